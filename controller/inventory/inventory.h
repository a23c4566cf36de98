// Inventory: the machines a controller drives, read from YAML.
//
//   defaults:
//     port: 7411             # used when an address has no port
//     connect_timeout: 3s
//   hosts:
//     - name: vm1
//       address: 10.0.0.11   # host or host:port ([v6]:port for IPv6)
//       labels: {role: driver, os: windows}
//
// SelectHosts() implements --hosts: a comma list of names ("vm1,vm2") or of
// label selectors ("role=driver,os=windows", all must match); empty = all.
// Every problem (unknown name, duplicate, bad address) is an error naming
// the file and line before anything is sent.

#ifndef LABTRACE_CONTROLLER_INVENTORY_INVENTORY_H_
#define LABTRACE_CONTROLLER_INVENTORY_INVENTORY_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace labtrace::controller {

struct Host {
  std::string name;
  std::string address;  // host:port, normalized.
  std::map<std::string, std::string> labels;
};

struct Inventory {
  std::vector<Host> hosts;
  absl::Duration connect_timeout = absl::Seconds(3);
  std::string source;  // File it came from, for messages.
};

// Parses inventory YAML (`source` names the file in error messages).
absl::StatusOr<Inventory> ParseInventory(const std::string& yaml,
                                         const std::string& source);
absl::StatusOr<Inventory> LoadInventory(const std::string& path);

// Normalizes "host" / "host:port" / "[v6]:port" with a default port;
// InvalidArgument for anything else.
absl::StatusOr<std::string> NormalizeAddress(const std::string& address,
                                             int default_port);

// Hosts picked by a --hosts expression, in inventory order.
absl::StatusOr<std::vector<Host>> SelectHosts(const Inventory& inventory,
                                              const std::string& expression);

}  // namespace labtrace::controller

#endif  // LABTRACE_CONTROLLER_INVENTORY_INVENTORY_H_
