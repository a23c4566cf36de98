// OutputSink: where a child process's output goes. The last `cap` bytes stay
// in memory (the tail is what explains a failure) and, optionally, every
// byte is appended to a file as it arrives, so a step command that writes
// gigabytes costs disk, not memory.
//
// Used by both subprocess implementations. Platform layer: standard library
// only. Thread-safe; appending is amortised O(1) per byte (the buffer grows
// to twice the cap between compactions).

#ifndef LABTRACE_COMMON_OUTPUT_SINK_H_
#define LABTRACE_COMMON_OUTPUT_SINK_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <string>

namespace labtrace::subprocess {

class OutputSink {
 public:
  // Resets the sink. With a non-empty `file_utf8`, output is also written to
  // that file (created or truncated); false and *error if it cannot be.
  bool Reset(std::size_t cap, const std::string& file_utf8,
             std::string* error, std::uint64_t file_cap = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cap_ = cap;
    file_cap_ = file_cap;
    data_.clear();
    dropped_ = false;
    total_ = 0;
    file_error_.clear();
    if (file_.is_open()) file_.close();
    if (!file_utf8.empty()) {
      file_path_ = std::filesystem::path(
          std::u8string(file_utf8.begin(), file_utf8.end()));
      file_.open(file_path_, std::ios::binary | std::ios::trunc);
      if (!file_) {
        *error = "cannot create the output file " + file_utf8;
        return false;
      }
    }
    return true;
  }

  void Append(const char* bytes, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    total_ += n;
    if (file_.is_open() && file_error_.empty()) {
      std::size_t take = n;
      const std::uint64_t before = total_ - n;
      if (file_cap_ > 0 && before + n > file_cap_) {
        take = before >= file_cap_ ? 0
                                   : static_cast<std::size_t>(file_cap_ - before);
      }
      // Flushed with every piece: the file is what a streamed RunCommand
      // reads while the child runs (and a full disk shows at once).
      if (!file_.write(bytes, static_cast<std::streamsize>(take)) ||
          !file_.flush()) {
        file_error_ = "writing the output file failed after " +
                      std::to_string(before) +
                      " bytes (disk full?); only the tail is kept";
      } else if (take < n) {
        file_ << "\n[labtrace: output cut here, at " << file_cap_
              << " bytes (the limit); the program wrote more]\n";
        file_error_ = "output longer than " + std::to_string(file_cap_) +
                      " bytes; the file holds the first " +
                      std::to_string(file_cap_);
      }
    }
    data_.append(bytes, n);
    if (data_.size() > cap_ && data_.size() - cap_ > cap_) {
      data_.erase(0, data_.size() - cap_);
      dropped_ = true;
    }
  }

  // Flushes and closes the file (call once the child's output has ended).
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!file_.is_open()) return;
    if (!file_.flush() && file_error_.empty()) {
      file_error_ = "flushing the output file failed (disk full?)";
    }
    file_.close();
  }

  std::string Tail() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (data_.size() <= cap_) return data_;
    return data_.substr(data_.size() - cap_);
  }
  bool truncated() const {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_ || data_.size() > cap_;
  }
  std::uint64_t total_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return total_;
  }
  std::string file_error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return file_error_;
  }

 private:
  mutable std::mutex mu_;
  std::size_t cap_ = 0;
  std::uint64_t file_cap_ = 0;
  std::string data_;
  bool dropped_ = false;
  std::uint64_t total_ = 0;
  std::filesystem::path file_path_;
  std::ofstream file_;
  std::string file_error_;
};

}  // namespace labtrace::subprocess

#endif  // LABTRACE_COMMON_OUTPUT_SINK_H_
