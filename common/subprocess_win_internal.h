// Internal helpers of common/subprocess_win.cc, declared here only so that
// tests/win/subprocess_win_test.cc can test them. Not for other callers.

#ifndef LABTRACE_COMMON_SUBPROCESS_WIN_INTERNAL_H_
#define LABTRACE_COMMON_SUBPROCESS_WIN_INTERNAL_H_

#include <string>
#include <vector>

namespace labtrace::subprocess::internal {

// UTF-8 <-> UTF-16. Invalid input sequences become U+FFFD.
std::wstring Utf8ToWide(const std::string& utf8);
std::string WideToUtf8(const std::wstring& wide);

// Quotes one argument so that the MSVCRT argv parser (and
// CommandLineToArgvW) turns it back into exactly `arg`: an argument without
// spaces, tabs, newlines or quotes is kept as is; otherwise it is wrapped in
// quotes, each quote is escaped with a backslash, and backslashes are doubled
// where they precede a quote (including the closing one).
std::wstring QuoteWindowsArg(const std::wstring& arg);

// Joins argv into a command line. argv[0] follows the simpler program-name
// rule (quoted if it has whitespace, never escaped: file names have no
// quotes); the other arguments use QuoteWindowsArg.
std::wstring BuildWindowsCommandLine(const std::vector<std::wstring>& argv);

// Merges `extra` ("KEY=VALUE" entries) into `parent`, a Windows environment
// block ("K=V\0K=V\0\0", as from GetEnvironmentStringsW; null means empty).
// Names compare case-insensitively and extra entries win. The result is a
// block sorted by name (as CreateProcessW wants), ending in two nulls.
// Returns false and sets *error if an extra entry has no "=" or no name.
bool MergeEnvironmentBlock(const wchar_t* parent,
                           const std::vector<std::string>& extra,
                           std::wstring* block, std::string* error);

}  // namespace labtrace::subprocess::internal

#endif  // LABTRACE_COMMON_SUBPROCESS_WIN_INTERNAL_H_
