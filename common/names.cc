#include "common/names.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace labtrace {
namespace {

bool IsAlnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9');
}

}  // namespace

bool IsValidName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  if (!IsAlnum(name[0])) return false;
  for (char c : name) {
    if (!IsAlnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string QuoteForMessage(absl::string_view value) {
  constexpr std::size_t kMaxShown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < value.size() && i < kMaxShown; ++i) {
    unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += absl::StrFormat("\\x%02x", c);
    }
  }
  out += '"';
  if (value.size() > kMaxShown) {
    absl::StrAppend(&out, "... (", value.size(), " bytes)");
  }
  return out;
}

absl::Status ValidateName(absl::string_view what, absl::string_view value) {
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  }
  if (value.size() > kMaxNameLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is ", value.size(), " characters long; at most ",
                     kMaxNameLength, " are allowed"));
  }
  if (!IsValidName(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " ", QuoteForMessage(value),
        " is invalid: use letters, digits, '.', '_' and '-', starting with a "
        "letter or digit"));
  }
  return absl::OkStatus();
}

absl::Status ValidateOptionalName(absl::string_view what,
                                  absl::string_view value) {
  if (value.empty()) return absl::OkStatus();
  return ValidateName(what, value);
}

absl::Status ValidateLabelValue(absl::string_view key,
                                absl::string_view value) {
  constexpr std::size_t kMaxLabelValue = 256;
  if (value.size() > kMaxLabelValue) {
    return absl::InvalidArgumentError(
        absl::StrCat("label ", QuoteForMessage(key), " value is ", value.size(),
                     " bytes long; at most ", kMaxLabelValue, " are allowed"));
  }
  for (char c : value) {
    if (c < 0x20 || c >= 0x7f) {
      return absl::InvalidArgumentError(absl::StrCat(
          "label ", QuoteForMessage(key),
          " value has a non-printable character: ", QuoteForMessage(value)));
    }
  }
  return absl::OkStatus();
}

}  // namespace labtrace
