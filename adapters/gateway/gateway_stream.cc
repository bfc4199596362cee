#include "adapters/gateway/gateway_stream.h"

#include <openssl/ssl.h>

#include "absl/strings/str_cat.h"

namespace entitysync {
namespace gateway {
namespace {

absl::Status FileError(const std::string& what, const std::string& file,
                       const beast::error_code& error) {
  return absl::InvalidArgumentError(
      absl::StrCat(what, " \"", file, "\": ", error.message()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<ssl::context>> MakeTlsContext(
    const std::string& cert_file, const std::string& key_file,
    const std::string& client_ca_file) {
  if (cert_file.empty() || key_file.empty()) {
    return absl::InvalidArgumentError(
        "TLS needs both a certificate chain and a private key file");
  }
  auto context = std::make_unique<ssl::context>(ssl::context::tls_server);
  beast::error_code error;
  context->set_options(ssl::context::default_workarounds |
                           ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                           ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                           ssl::context::single_dh_use,
                       error);
  if (error) {
    return absl::InternalError(absl::StrCat("TLS options: ", error.message()));
  }
  if (context->use_certificate_chain_file(cert_file, error); error) {
    return FileError("certificate chain", cert_file, error);
  }
  if (context->use_private_key_file(key_file, ssl::context::pem, error);
      error) {
    return FileError("private key", key_file, error);
  }
  if (!client_ca_file.empty()) {
    if (context->load_verify_file(client_ca_file, error); error) {
      return FileError("client CAs", client_ca_file, error);
    }
    context->set_verify_mode(
        ssl::verify_peer | ssl::verify_fail_if_no_peer_cert, error);
    if (error) {
      return absl::InternalError(
          absl::StrCat("TLS verify mode: ", error.message()));
    }
  }
  // An idle connection gives its read and write buffers back (OpenSSL
  // keeps ~34 KB per connection otherwise).
  SSL_CTX_set_mode(context->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  // Browsers resume sessions when they reconnect; with client certificates
  // checked, OpenSSL refuses a resumption unless the sessions say whose
  // they are.
  static constexpr unsigned char kSessionContext[] = "entitysync-gateway";
  SSL_CTX_set_session_id_context(context->native_handle(), kSessionContext,
                                 sizeof(kSessionContext) - 1);
  return context;
}

}  // namespace gateway
}  // namespace entitysync
