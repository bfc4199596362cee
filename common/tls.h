// TLS credentials from PEM files, for the replica's ports, its resolver
// channels, the gateway's upstream and the CLI. Files are read once, when
// the credentials are made; errors name the file, never its contents.
#ifndef ENTITYSYNC_COMMON_TLS_H_
#define ENTITYSYNC_COMMON_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"

namespace entitysync {

struct TlsFiles {
  // This side's certificate chain and private key (PEM).
  std::string cert_file;
  std::string key_file;
  // Server: when set, clients must present a certificate signed by one of
  // these CAs (mutual TLS). Client: the CAs that sign the server's
  // certificate; empty means the system's roots.
  std::string ca_file;

  bool has_identity() const { return !cert_file.empty() || !key_file.empty(); }
};

// Server: no cert_file/key_file and no ca_file gives plaintext
// (insecure) credentials. `what` names the flags in errors
// ("--tls_cert_file").
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, const std::string& what);

// Client: TLS with files.ca_file (or the system roots), and a client
// certificate when cert_file/key_file are set.
absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>>
MakeTlsChannelCredentials(const TlsFiles& files, const std::string& what);

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_TLS_H_
