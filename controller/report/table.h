// Plain-text tables for the CLI's human output: columns sized to content.
//
//   Table t({"HOST", "STATUS"});
//   t.AddRow({"vm1", "ok"});
//   out << t.Render();

#ifndef LABTRACE_CONTROLLER_REPORT_TABLE_H_
#define LABTRACE_CONTROLLER_REPORT_TABLE_H_

#include <string>
#include <vector>

namespace labtrace::controller {

class Table {
 public:
  explicit Table(std::vector<std::string> header)
      : header_(std::move(header)) {}
  void AddRow(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  // Columns separated by two spaces; the last column is not padded.
  std::string Render() const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_REPORT_TABLE_H_
