#include "controller/inventory/inventory.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/yaml_util.h"
#include "yaml-cpp/yaml.h"

namespace labtrace::controller {
namespace {

absl::Status Bad(const std::string& source, const YAML::Node& node,
                 absl::string_view msg) {
  return YamlError(source, node, msg);
}

bool ValidHostPart(absl::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  for (char c : h) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::string> NormalizeAddress(const std::string& address,
                                             int default_port) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad address \"", address, "\": ", why));
  };
  std::string host;
  std::string port;
  if (!address.empty() && address[0] == '[') {
    const std::size_t close = address.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    host = address.substr(0, close + 1);
    absl::string_view rest = absl::string_view(address).substr(close + 1);
    if (!rest.empty()) {
      if (!absl::ConsumePrefix(&rest, ":"))
        return bad("expected :PORT after ]");
      port = std::string(rest);
    }
    if (host.size() <= 2) return bad("empty IPv6 address");
  } else {
    const std::vector<std::string> parts = absl::StrSplit(address, ':');
    if (parts.size() > 2)
      return bad("IPv6 addresses go in brackets: [::1]:7411");
    host = parts[0];
    if (parts.size() == 2) port = parts[1];
    if (!ValidHostPart(host)) return bad("expected HOST or HOST:PORT");
  }
  int p = default_port;
  if (!port.empty() && (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535)) {
    return bad("port must be 1..65535");
  }
  return absl::StrCat(host, ":", p);
}

namespace {

// Security keys shared by `defaults` and each host.
const std::set<std::string> kSecurityKeys = {"tls", "token_file", "token_env"};

std::filesystem::path Resolve(const std::string& source,
                              const std::string& file) {
  std::filesystem::path p = PathFromUtf8(file);
  if (absl::StartsWith(file, "~/")) {
    const char* home = std::getenv("HOME");
    if (home == nullptr) home = std::getenv("USERPROFILE");  // Windows.
    p = PathFromUtf8(home != nullptr ? home : "") / PathFromUtf8(file.substr(2));
  }
  if (p.is_relative()) p = PathFromUtf8(source).parent_path() / p;
  return p;
}

// Applies tls / token_file / token_env of `node` onto `h` (a host, or the
// defaults that every host starts from).
absl::Status ApplySecurity(const std::string& source, const YAML::Node& node,
                           Host* h) {
  if (const YAML::Node t = node["tls"]) {
    LABTRACE_RETURN_IF_ERROR(CheckYamlKeys(
        source, t, "tls", {"ca_file", "cert_file", "key_file", "server_name"}));
    h->tls = HostTls{};
    h->tls.enabled = true;
    auto read = [&](const char* key, std::string* out) -> absl::Status {
      if (!t[key]) return absl::OkStatus();
      std::string file;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, t[key], &file));
      absl::StatusOr<std::string> pem = ReadFile(Resolve(source, file));
      if (!pem.ok()) return Bad(source, t[key], pem.status().message());
      *out = *pem;
      return absl::OkStatus();
    };
    LABTRACE_RETURN_IF_ERROR(read("ca_file", &h->tls.ca_pem));
    LABTRACE_RETURN_IF_ERROR(read("cert_file", &h->tls.cert_pem));
    LABTRACE_RETURN_IF_ERROR(read("key_file", &h->tls.key_pem));
    if (h->tls.cert_pem.empty() != h->tls.key_pem.empty()) {
      return Bad(source, t,
                 "tls needs both cert_file and key_file (or neither)");
    }
    if (t["server_name"]) {
      LABTRACE_RETURN_IF_ERROR(
          YamlReadString(source, t["server_name"], &h->tls.server_name));
    }
  }
  if (node["token_file"] && node["token_env"]) {
    return Bad(source, node, "use token_file or token_env, not both");
  }
  if (const YAML::Node f = node["token_file"]) {
    std::string file;
    LABTRACE_RETURN_IF_ERROR(YamlReadString(source, f, &file));
    absl::StatusOr<std::string> tok = ReadFile(Resolve(source, file));
    if (!tok.ok()) return Bad(source, f, tok.status().message());
    h->token = std::string(absl::StripAsciiWhitespace(*tok));
    if (h->token.empty()) return Bad(source, f, "the token file is empty");
  }
  if (const YAML::Node e = node["token_env"]) {
    std::string var;
    LABTRACE_RETURN_IF_ERROR(YamlReadString(source, e, &var));
    const char* v = std::getenv(var.c_str());
    if (v == nullptr || *v == '\0') {
      return Bad(source, e,
                 absl::StrCat("environment variable ", var,
                              " (token_env) is not set"));
    }
    h->token = std::string(absl::StripAsciiWhitespace(v));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Inventory> ParseInventory(const std::string& yaml,
                                         const std::string& source) {
  Inventory inv;
  inv.source = source;
  absl::StatusOr<YAML::Node> parsed = ParseYaml(yaml, source);
  if (!parsed.ok()) return parsed.status();
  const YAML::Node& root = *parsed;
  try {
    if (!root.IsMap())
      return Bad(source, root, "an inventory is a mapping with `hosts:`");
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key != "defaults" && key != "hosts" && key != "egress") {
        return Bad(source, kv.first,
                   absl::StrCat("unknown key \"", key,
                                "\"; use defaults, hosts and egress"));
      }
    }
    if (const YAML::Node e = root["egress"]) {
      if (!e.IsMap()) return Bad(source, e, "`egress` must be a mapping");
      for (const auto& kv : e) {
        const std::string key = kv.first.as<std::string>();
        std::string* field = key == "url"        ? &inv.egress.url
                             : key == "endpoint" ? &inv.egress.endpoint
                             : key == "region"   ? &inv.egress.region
                             : key == "profile"  ? &inv.egress.profile
                                                 : nullptr;
        if (field == nullptr) {
          return Bad(source, kv.first,
                     absl::StrCat("unknown key \"", key,
                                  "\" in egress; known: url, endpoint, "
                                  "region, profile"));
        }
        LABTRACE_RETURN_IF_ERROR(YamlReadString(source, kv.second, field));
      }
    }
    int default_port = 7411;
    Host defaults;  // Security settings every host starts from.
    if (const YAML::Node d = root["defaults"]) {
      if (!d.IsMap()) return Bad(source, d, "`defaults` must be a mapping");
      for (const auto& kv : d) {
        const std::string key = kv.first.as<std::string>();
        if (key == "port") {
          // Same words as NormalizeAddress for a port in an address.
          if (!YamlReadInt(source, kv.second, 1, 65535, &default_port).ok()) {
            return Bad(source, kv.second, "port must be 1..65535");
          }
        } else if (key == "connect_timeout") {
          LABTRACE_RETURN_IF_ERROR(
              YamlReadDuration(source, kv.second, &inv.connect_timeout));
        } else if (!kSecurityKeys.count(key)) {
          return Bad(
              source, kv.first,
              absl::StrCat("unknown key \"", key,
                           "\" in defaults; known: port, connect_timeout, "
                           "tls, token_file, token_env"));
        }
      }
      LABTRACE_RETURN_IF_ERROR(ApplySecurity(source, d, &defaults));
    }
    const YAML::Node hosts = root["hosts"];
    if (!hosts || !hosts.IsSequence() || hosts.size() == 0) {
      return Bad(source, hosts ? hosts : root,
                 "`hosts` must be a non-empty list");
    }
    std::set<std::string> names;
    for (const auto& h : hosts) {
      if (!h.IsMap() || !h["name"] || !h["address"]) {
        return Bad(source, h, "each host needs `name` and `address`");
      }
      for (const auto& kv : h) {
        const std::string key = kv.first.as<std::string>();
        if (key != "name" && key != "address" && key != "labels" &&
            !kSecurityKeys.count(key)) {
          return Bad(source, kv.first,
                     absl::StrCat("unknown key \"", key,
                                  "\" in a host; known: name, address, labels, "
                                  "tls, token_file, token_env"));
        }
      }
      Host host = defaults;
      LABTRACE_RETURN_IF_ERROR(ApplySecurity(source, h, &host));
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, h["name"], &host.name));
      if (absl::Status s = ValidateName("host name", host.name); !s.ok()) {
        return Bad(source, h["name"], s.message());
      }
      if (!names.insert(host.name).second) {
        return Bad(source, h["name"],
                   absl::StrCat("host \"", host.name, "\" is listed twice"));
      }
      std::string address;
      LABTRACE_RETURN_IF_ERROR(YamlReadString(source, h["address"], &address));
      absl::StatusOr<std::string> addr =
          NormalizeAddress(address, default_port);
      if (!addr.ok()) return Bad(source, h["address"], addr.status().message());
      host.address = *addr;
      if (const YAML::Node labels = h["labels"]) {
        if (!labels.IsMap())
          return Bad(source, labels, "`labels` must be a mapping");
        for (const auto& kv : labels) {
          std::string value;
          LABTRACE_RETURN_IF_ERROR(YamlReadString(source, kv.second, &value));
          host.labels[kv.first.as<std::string>()] = std::move(value);
        }
      }
      inv.hosts.push_back(std::move(host));
    }
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ":", e.mark.line + 1, ": ", e.msg));
  }
  return inv;
}

absl::StatusOr<Inventory> LoadInventory(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(PathFromUtf8(path));
  if (!text.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot read inventory ", path,
        " (set --inventory or LABTRACE_INVENTORY): ", text.status().message()));
  }
  return ParseInventory(*text, path);
}

absl::StatusOr<std::vector<Host>> SelectHosts(const Inventory& inventory,
                                              const std::string& expression) {
  if (expression.empty() || expression == "all") return inventory.hosts;
  std::vector<std::string> terms =
      absl::StrSplit(expression, ',', absl::SkipWhitespace());
  std::map<std::string, std::string> selectors;
  std::set<std::string> names;
  for (std::string& t : terms) {
    t = std::string(absl::StripAsciiWhitespace(t));
    if (auto eq = t.find('='); eq != std::string::npos) {
      selectors[t.substr(0, eq)] = t.substr(eq + 1);
    } else {
      names.insert(t);
    }
  }
  if (!selectors.empty() && !names.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hosts \"", expression,
                     "\" mixes host names and label selectors; use one kind"));
  }
  std::vector<Host> out;
  if (!names.empty()) {
    std::set<std::string> known;
    for (const Host& h : inventory.hosts) known.insert(h.name);
    std::vector<std::string> unknown;
    for (const std::string& n : names) {
      if (!known.count(n)) unknown.push_back(n);
    }
    if (!unknown.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unknown host", unknown.size() > 1 ? "s " : " ",
          absl::StrJoin(unknown, ", "), " (not in ", inventory.source, ")"));
    }
    for (const Host& h : inventory.hosts) {
      if (names.count(h.name)) out.push_back(h);
    }
    return out;
  }
  for (const Host& h : inventory.hosts) {
    bool match = true;
    for (const auto& [k, v] : selectors) {
      auto it = h.labels.find(k);
      if (it == h.labels.end() || it->second != v) match = false;
    }
    if (match) out.push_back(h);
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("no host in ", inventory.source, " matches --hosts \"",
                     expression, "\""));
  }
  return out;
}

}  // namespace labtrace::controller
