// POSIX implementation of common/etw_sessions.h: there is no ETW.

#include "common/etw_sessions.h"

namespace labtrace::etw {

bool ListSessions(std::vector<std::string>* names, std::string*) {
  names->clear();
  return true;
}

}  // namespace labtrace::etw
