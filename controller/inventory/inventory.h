// Inventory: the machines a controller drives, read from YAML.
//
//   defaults:
//     port: 7411             # used when an address has no port
//     connect_timeout: 3s
//     tls:                   # optional; also per host
//       ca_file: ca.pem      # trust these CAs for the agents' certificates
//       cert_file: me.pem    # client certificate (agents with mutual TLS)
//       key_file: me.key
//       server_name: agent   # expected name in the agents' certificates
//     token_file: ~/.labtrace-token   # or token_env: LABTRACE_TOKEN
// (files relative to the inventory's folder; the token is never taken from
// the command line)
//   egress:                  # optional: object storage for --egress
//     url: s3://lab-traces/nightly   # default for --egress
//     endpoint: http://rgw.lab:7480  # non-AWS stores; default AWS
//     region: us-east-1
//     profile: lab                   # in ~/.aws/credentials
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
#include "controller/egress/s3.h"

namespace labtrace::controller {

// How to reach an agent securely; PEM contents, read at load.
struct HostTls {
  bool enabled = false;
  std::string ca_pem;
  std::string cert_pem;
  std::string key_pem;
  std::string server_name;
};

struct Host {
  std::string name;
  std::string address;  // host:port, normalized.
  std::map<std::string, std::string> labels;
  HostTls tls;
  std::string token;  // Bearer token (secret; never printed).
};

struct Inventory {
  std::vector<Host> hosts;
  absl::Duration connect_timeout = absl::Seconds(3);
  std::string source;  // File it came from, for messages.
  EgressSettings egress;
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
