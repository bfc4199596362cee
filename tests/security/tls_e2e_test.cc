// TLS and mutual TLS on the public and internal ports and to resolvers, with
// certificates made by the `openssl` command when the test starts: a CA, a
// server certificate for 127.0.0.1/localhost, a client certificate, and a
// second CA whose certificates nobody trusts.
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "adapters/gateway/beast.h"
#include "adapters/gateway/gateway.h"
#include "adapters/gateway/gateway_stream.h"
#include "common/tls.h"
#include "examples/items/items_resolver.h"
#include "examples/items/items_store.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "server/transport/websocket/hosted_gateway.h"
#include "tests/e2e/e2e_harness.h"

namespace entitysync::testing {
namespace {

std::string Dir() {
  static const std::string dir = TempPath("tls");
  return dir;
}
std::string File(const std::string& name) { return Dir() + "/" + name; }

// Runs a shell command; the test fails when it does.
void Sh(const std::string& command) {
  const int rc = std::system(
      absl::StrCat("cd '", Dir(), "' && (", command, ") >>openssl.log 2>&1")
          .c_str());
  ASSERT_EQ(rc, 0) << command << "\n(see " << File("openssl.log") << ")";
}

void MakeCertificates() {
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p '", Dir(), "'").c_str()), 0);
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1";
  for (const std::string ca : {"ca", "other-ca"}) {
    Sh(absl::StrCat("openssl req -x509 ", ec, " -nodes -keyout ", ca,
                    ".key -out ", ca, ".pem -days 2 -subj /CN=", ca));
  }
  Sh("printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n"
     "extendedKeyUsage=serverAuth\\n' > server.ext");
  Sh("printf 'extendedKeyUsage=clientAuth\\n' > client.ext");
  // name, signing CA, extensions
  for (const auto& [name, ca, ext] :
       {std::tuple<std::string, std::string, std::string>{"server", "ca",
                                                          "server"},
        {"client", "ca", "client"},
        {"stranger", "other-ca", "client"}}) {
    Sh(absl::StrCat("openssl req ", ec, " -nodes -keyout ", name, ".key -out ",
                    name, ".csr -subj /CN=", name));
    Sh(absl::StrCat("openssl x509 -req -in ", name, ".csr -CA ", ca,
                    ".pem -CAkey ", ca, ".key -CAcreateserial -out ", name,
                    ".pem -days 2 -extfile ", ext, ".ext"));
  }
}

std::shared_ptr<grpc::ServerCredentials> ServerTls(bool require_client) {
  TlsFiles files;
  files.cert_file = File("server.pem");
  files.key_file = File("server.key");
  if (require_client) files.ca_file = File("ca.pem");
  auto credentials = MakeServerCredentials(files, "test");
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  return credentials.ok() ? *credentials : nullptr;
}

// A TLS client trusting `ca`, presenting `identity` (a name of the files
// above) when not empty.
std::shared_ptr<grpc::Channel> TlsChannel(int port, const std::string& ca,
                                          const std::string& identity) {
  TlsFiles files;
  files.ca_file = File(ca + ".pem");
  if (!identity.empty()) {
    files.cert_file = File(identity + ".pem");
    files.key_file = File(identity + ".key");
  }
  auto credentials = MakeTlsChannelCredentials(files, "test");
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  grpc::ChannelArguments args;
  // A channel of its own per call: no connection shared between cases.
  static int unique = 0;
  args.SetInt("entitysync.test.unique", ++unique);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   *credentials, args);
}

std::shared_ptr<grpc::Channel> PlainChannel(int port) {
  grpc::ChannelArguments args;
  static int unique = 0;
  args.SetInt("entitysync.test.unique.plain", ++unique);
  return grpc::CreateCustomChannel(absl::StrCat("127.0.0.1:", port),
                                   grpc::InsecureChannelCredentials(), args);
}

// Subscribes to items/<id> over `channel`; OK with the snapshot's first row
// in *row, or the failure (the stream's status, or the error message).
grpc::Status Snapshot(const std::shared_ptr<grpc::Channel>& channel,
                      const std::string& id, std::string* row) {
  auto stub = v1::EntitySync::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  auto stream = stub->Subscribe(&context);
  v1::SubscribeRequest request;
  request.set_request_id(1);
  request.mutable_subscribe()->mutable_key()->set_entity("items");
  request.mutable_subscribe()->mutable_key()->set_id(id);
  stream->Write(request);
  v1::SubscribeResponse response;
  while (stream->Read(&response)) {
    if (response.has_update() && response.update().rows_size() > 0) {
      *row = response.update().rows(0).data();
      context.TryCancel();
      stream->Finish();
      return grpc::Status::OK;
    }
    if (response.has_error()) {
      context.TryCancel();
      stream->Finish();
      return grpc::Status(grpc::StatusCode::UNKNOWN,
                          response.error().message());
    }
  }
  return stream->Finish();
}

grpc::Status Notify(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = v1::Notifier::NewStub(channel);
  v1::NotifyRequest request;
  request.add_changes()->mutable_key()->set_entity("items");
  request.mutable_changes(0)->mutable_key()->set_id("1");
  v1::NotifyResponse response;
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(5)));
  return stub->Notify(&context, request, &response);
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { MakeCertificates(); }

  void SetUp() override {
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
    backend_.Set("1", "Lamp");
  }

  void Start(ServerOptions options) {
    if (options.config.entities_size() == 0) {
      options.config = ItemsConfig(backend_.target());
    }
    options.public_address = "127.0.0.1:0";
    options.internal_address = "127.0.0.1:0";
    server_ = StartServer(std::move(options));
    ASSERT_NE(server_, nullptr);
  }
  int pub() const { return server_->public_port(); }
  int internal() const { return server_->internal_port(); }

  ItemsBackend backend_;
  std::unique_ptr<EntitySyncServer> server_;
};

TEST_F(TlsTest, PublicPortWithTlsServesOnlyClientsThatTrustIt) {
  ServerOptions options;
  options.public_credentials = ServerTls(/*require_client=*/false);
  Start(std::move(options));
  std::string row;
  const grpc::Status ok = Snapshot(TlsChannel(pub(), "ca", ""), "1", &row);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_TRUE(absl::StrContains(row, "Lamp"));
  // Plaintext to a TLS port, and TLS to a server signed by an unknown CA.
  EXPECT_FALSE(Snapshot(PlainChannel(pub()), "1", &row).ok());
  EXPECT_EQ(Snapshot(TlsChannel(pub(), "other-ca", ""), "1", &row).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, PublicPortWithMutualTlsNeedsACertificateFromItsCa) {
  ServerOptions options;
  options.public_credentials = ServerTls(/*require_client=*/true);
  Start(std::move(options));
  std::string row;
  const grpc::Status ok =
      Snapshot(TlsChannel(pub(), "ca", "client"), "1", &row);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_TRUE(absl::StrContains(row, "Lamp"));
  EXPECT_EQ(Snapshot(TlsChannel(pub(), "ca", ""), "1", &row).error_code(),
            grpc::StatusCode::UNAVAILABLE)
      << "no client certificate";
  EXPECT_EQ(
      Snapshot(TlsChannel(pub(), "ca", "stranger"), "1", &row).error_code(),
      grpc::StatusCode::UNAVAILABLE)
      << "a certificate from another CA";
}

TEST_F(TlsTest, InternalPortWithMutualTlsRefusesNotifyWithoutACertificate) {
  ServerOptions options;
  options.internal_credentials = ServerTls(/*require_client=*/true);
  Start(std::move(options));
  EXPECT_TRUE(Notify(TlsChannel(internal(), "ca", "client")).ok());
  EXPECT_FALSE(Notify(TlsChannel(internal(), "ca", "")).ok());
  EXPECT_FALSE(Notify(TlsChannel(internal(), "ca", "stranger")).ok());
  EXPECT_FALSE(Notify(PlainChannel(internal())).ok());
  // The public port stays plaintext when only the internal one has TLS.
  std::string row;
  EXPECT_TRUE(Snapshot(PlainChannel(pub()), "1", &row).ok());
}

// The items resolver behind mutual TLS, the replica configured to reach it.
class TlsResolver {
 public:
  TlsResolver() {
    auto store = examples::ItemsStore::Open(TempPath("tls-items.db"));
    EXPECT_TRUE(store.ok());
    store_ = *std::move(store);
    examples::ItemChange change;
    change.id = "5";
    change.name = "Behind TLS";
    EXPECT_TRUE(store_->Upsert(change).ok());
    resolver_ = std::make_unique<examples::ItemsResolver>(
        store_.get(), examples::ItemsResolver::Options{});
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", ServerTls(/*require_client=*/true),
                             &port_);
    builder.RegisterService(resolver_.get());
    server_ = builder.BuildAndStart();
  }
  ~TlsResolver() { server_->Shutdown(); }
  // The replica's table for this resolver; `identity` "" sends no client
  // certificate.
  v1::ServerConfig Config(const std::string& identity) const {
    v1::ServerConfig config = ItemsConfig(absl::StrCat("127.0.0.1:", port_));
    v1::TlsConfig* tls =
        config.mutable_entities(0)->mutable_resolver()->mutable_tls();
    tls->set_ca_file(File("ca.pem"));
    tls->set_server_name("localhost");
    if (!identity.empty()) {
      tls->set_cert_file(File(identity + ".pem"));
      tls->set_key_file(File(identity + ".key"));
    }
    return config;
  }

 private:
  std::unique_ptr<examples::ItemsStore> store_;
  std::unique_ptr<examples::ItemsResolver> resolver_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

TEST_F(TlsTest, ResolverReachedOverMutualTls) {
  TlsResolver resolver;
  ServerOptions options;
  options.config = resolver.Config("client");
  Start(std::move(options));
  std::string row;
  const grpc::Status ok = Snapshot(PlainChannel(pub()), "5", &row);
  ASSERT_TRUE(ok.ok()) << ok.error_message();
  EXPECT_TRUE(absl::StrContains(row, "Behind TLS"));
}

TEST_F(TlsTest, ResolverRefusingTheReplicaGivesSubscribersAnError) {
  TlsResolver resolver;
  ServerOptions options;
  options.config = resolver.Config("");  // no client certificate
  options.config.mutable_entities(0)->mutable_resolver()->set_timeout_ms(1000);
  Start(std::move(options));
  std::string row;
  const grpc::Status failed = Snapshot(PlainChannel(pub()), "5", &row);
  EXPECT_FALSE(failed.ok());
  EXPECT_TRUE(row.empty()) << "rows without a resolver: " << row;
}

// "STATUS BODY" of a GET on 127.0.0.1:port.
std::string HttpGet(int port, const std::string& target) {
  using namespace gateway;  // NOLINT: beast, http, net, tcp
  net::io_context io;
  tcp::socket socket(io);
  socket.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port));
  http::request<http::empty_body> request(http::verb::get, target, 11);
  request.set(http::field::host, "127.0.0.1");
  http::write(socket, request);
  beast::flat_buffer buffer;
  http::response<http::string_body> response;
  http::read(socket, buffer, response);
  return absl::StrCat(response.result_int(), " ", response.body());
}

TEST_F(TlsTest, StandaloneGatewayReachesAMutualTlsPublicPort) {
  ServerOptions options;
  options.public_credentials = ServerTls(/*require_client=*/true);
  Start(std::move(options));
  for (const std::string identity : {"client", ""}) {
    gateway::GatewayOptions gateway_options;
    gateway_options.address = "127.0.0.1:0";
    gateway_options.upstream = absl::StrCat("127.0.0.1:", pub());
    TlsFiles files;
    files.ca_file = File("ca.pem");
    if (!identity.empty()) {
      files.cert_file = File(identity + ".pem");
      files.key_file = File(identity + ".key");
    }
    auto credentials = MakeTlsChannelCredentials(files, "test");
    ASSERT_TRUE(credentials.ok());
    gateway_options.upstream_credentials = *credentials;
    gateway_options.upstream_server_name = "localhost";
    auto gateway = gateway::Gateway::Start(gateway_options);
    ASSERT_TRUE(gateway.ok()) << gateway.status();
    const std::string answer = HttpGet(
        (*gateway)->port(), "/v1/await?entity=items&id=1&timeout_ms=3000");
    if (identity.empty()) {
      EXPECT_FALSE(absl::StartsWith(answer, "200"))
          << "no client certificate, yet: " << answer;
    } else {
      EXPECT_TRUE(absl::StartsWith(answer, "200 ")) << answer;
      EXPECT_TRUE(absl::StrContains(answer, "Lamp")) << answer;
    }
  }
}

// A browser's side of the gateway's TLS: trusts `ca`, presents `identity`
// (a name of the files above) when not empty, checks the certificate names
// 127.0.0.1. Blocking; one thread drives it.
class BrowserTls {
 public:
  BrowserTls(const std::string& ca, const std::string& identity) {
    context_.load_verify_file(File(ca + ".pem"));
    if (!identity.empty()) {
      context_.use_certificate_chain_file(File(identity + ".pem"));
      context_.use_private_key_file(File(identity + ".key"),
                                    gateway::ssl::context::pem);
    }
  }

  // wss://127.0.0.1:port/ws/entity-sync/ in the enveloped protocol: the
  // first failure of TCP, TLS or the upgrade.
  gateway::beast::error_code OpenWebSocket(int port) {
    using namespace gateway;  // NOLINT: beast, http, net, ssl, tcp, websocket
    // A browser reconnecting offers the session of its last connection.
    SSL_SESSION* last = nullptr;
    if (ws_.has_value()) {
      // Closed as a browser closes it (WebSocket close, then TLS
      // close_notify): a session ended without one is not resumed.
      beast::error_code ignored;
      ws_->close(websocket::close_code::normal, ignored);
      last = SSL_get1_session(ws_->next_layer().native_handle());
    }
    ws_.emplace(io_, context_);
    if (last != nullptr) {
      SSL_set_session(ws_->next_layer().native_handle(), last);
      SSL_SESSION_free(last);
    }
    beast::error_code error;
    beast::get_lowest_layer(*ws_).connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), port), error);
    if (error) return error;
    ws_->next_layer().set_verify_mode(ssl::verify_peer);
    ws_->next_layer().set_verify_callback(
        ssl::host_name_verification("127.0.0.1"));
    ws_->next_layer().handshake(ssl::stream_base::client, error);
    if (error) return error;
    ws_->set_option(
        websocket::stream_base::decorator([](websocket::request_type& r) {
          r.set(http::field::sec_websocket_protocol, "entitysync.v1.json");
        }));
    ws_->handshake(absl::StrCat("127.0.0.1:", port), "/ws/entity-sync/", error);
    return error;
  }

  // Whether the last connection resumed the one before it.
  bool resumed() {
    return SSL_session_reused(ws_->next_layer().native_handle()) == 1;
  }

  void Send(const std::string& text) {
    ws_->text(true);
    ws_->write(gateway::net::buffer(text));
  }

  // The next update's first row (its JSON), or the error that ended reading.
  std::string ReadUpdateRow() {
    while (true) {
      gateway::beast::flat_buffer buffer;
      gateway::beast::error_code error;
      ws_->read(buffer, error);
      if (error) return "error: " + error.message();
      nlohmann::json message = nlohmann::json::parse(
          gateway::beast::buffers_to_string(buffer.data()), nullptr, false);
      if (message.value("type", "") == "update") {
        return message["rows"][0]["json"].dump();
      }
    }
  }

  // GET `target` over https: "STATUS BODY", or "error: ...".
  std::string HttpsGet(int port, const std::string& target) {
    using namespace gateway;  // NOLINT
    ssl::stream<tcp::socket> stream(io_, context_);
    beast::error_code error;
    stream.next_layer().connect(
        tcp::endpoint(net::ip::make_address("127.0.0.1"), port), error);
    stream.set_verify_mode(ssl::verify_peer);
    stream.set_verify_callback(ssl::host_name_verification("127.0.0.1"));
    if (!error) stream.handshake(ssl::stream_base::client, error);
    http::request<http::empty_body> request(http::verb::get, target, 11);
    request.set(http::field::host, "127.0.0.1");
    if (!error) http::write(stream, request, error);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    if (!error) http::read(stream, buffer, response, error);
    if (error) return "error: " + error.message();
    return absl::StrCat(response.result_int(), " ", response.body());
  }

 private:
  gateway::net::io_context io_;
  gateway::ssl::context context_{gateway::ssl::context::tls_client};
  std::optional<
      gateway::websocket::stream<gateway::ssl::stream<gateway::tcp::socket>>>
      ws_;
};

// The gateway a replica hosts speaks TLS where its public port does, with
// the same files: WebSocket (wss://) and HTTP (https://), frames of any
// size; nothing in the clear.
TEST_F(TlsTest, HostedGatewaySpeaksTlsWithThePublicPortsCertificate) {
  ServerOptions options;
  options.public_credentials = ServerTls(/*require_client=*/false);
  Start(std::move(options));
  gateway::GatewayOptions gateway_options;
  gateway_options.address = "127.0.0.1:0";
  gateway_options.tls_cert_file = File("server.pem");
  gateway_options.tls_key_file = File("server.key");
  // The upgrade request's deadline must not outlive the upgrade.
  gateway_options.request_timeout = absl::Milliseconds(300);
  auto gateway = StartHostedGateway(server_.get(), gateway_options);
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const int port = (*gateway)->port();

  BrowserTls browser("ca", "");
  ASSERT_EQ(browser.OpenWebSocket(port), gateway::beast::error_code());
  browser.Send(R"({"action":"subscribe","request_id":1,)"
               R"("body":{"entity":"items","id":"1"}})");
  EXPECT_TRUE(absl::StrContains(browser.ReadUpdateRow(), "Lamp"));
  absl::SleepFor(absl::Seconds(1));
  // Larger than a TLS record (16 KB), and two changes that may leave in one
  // write.
  const std::string big(100 << 10, 'x');
  backend_.Set("1", "first " + big);
  ASSERT_TRUE(Notify(PlainChannel(internal())).ok());
  backend_.Set("1", "second " + big);
  ASSERT_TRUE(Notify(PlainChannel(internal())).ok());
  std::string row;
  do {
    row = browser.ReadUpdateRow();
  } while (absl::StrContains(row, "first "));
  EXPECT_TRUE(absl::StrContains(row, "second " + big)) << row.substr(0, 80);

  const std::string answer =
      browser.HttpsGet(port, "/v1/await?entity=items&id=1&timeout_ms=3000");
  EXPECT_TRUE(absl::StartsWith(answer, "200 ")) << answer.substr(0, 80);
  EXPECT_TRUE(absl::StrContains(answer, "second ")) << answer.substr(0, 80);

  // A page served in the clear gets no answer, and a browser that does not
  // trust the CA does not connect.
  EXPECT_THROW(HttpGet(port, "/v1/await?entity=items&id=1&timeout_ms=100"),
               boost::system::system_error);
  BrowserTls stranger("other-ca", "");
  EXPECT_NE(stranger.OpenWebSocket(port), gateway::beast::error_code());
  EXPECT_EQ((*gateway)->connections(), 1u);
}

TEST_F(TlsTest, HostedGatewayWithMutualTlsNeedsACertificateFromItsCa) {
  ServerOptions options;
  options.public_credentials = ServerTls(/*require_client=*/true);
  Start(std::move(options));
  gateway::GatewayOptions gateway_options;
  gateway_options.address = "127.0.0.1:0";
  gateway_options.tls_cert_file = File("server.pem");
  gateway_options.tls_key_file = File("server.key");
  gateway_options.tls_client_ca_file = File("ca.pem");
  auto gateway = StartHostedGateway(server_.get(), gateway_options);
  ASSERT_TRUE(gateway.ok()) << gateway.status();
  const int port = (*gateway)->port();
  for (const std::string identity : {"", "stranger"}) {
    BrowserTls browser("ca", identity);
    EXPECT_NE(browser.OpenWebSocket(port), gateway::beast::error_code())
        << "connected with " << (identity.empty() ? "no" : identity)
        << " certificate";
  }
  BrowserTls client("ca", "client");
  // Twice: the second connection resumes the first's TLS session, as a
  // browser that reconnects does.
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(client.OpenWebSocket(port), gateway::beast::error_code()) << i;
    client.Send(R"({"action":"subscribe","request_id":1,)"
                R"("body":{"entity":"items","id":"1"}})");
    EXPECT_TRUE(absl::StrContains(client.ReadUpdateRow(), "Lamp")) << i;
  }
  EXPECT_TRUE(client.resumed());
}

TEST(TlsFilesTest, BadGatewayFilesGetPreciseErrors) {
  gateway::GatewayOptions options;
  options.address = "127.0.0.1:0";
  options.tls_cert_file = "/nonexistent/cert.pem";
  options.tls_key_file = "/nonexistent/key.pem";
  auto missing = gateway::Gateway::Start(options);
  ASSERT_FALSE(missing.ok());
  EXPECT_TRUE(
      absl::StrContains(missing.status().message(), "/nonexistent/cert.pem"))
      << missing.status();
  options.tls_key_file.clear();
  auto half = gateway::Gateway::Start(options);
  ASSERT_FALSE(half.ok());
  EXPECT_TRUE(absl::StrContains(half.status().message(), "private key"))
      << half.status();
}

TEST(TlsFilesTest, BadFilesGetPreciseErrors) {
  TlsFiles missing;
  missing.cert_file = "/nonexistent/cert.pem";
  missing.key_file = "/nonexistent/key.pem";
  auto a = MakeServerCredentials(missing, "--tls_*_file");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().message(),
            "--tls_*_file: cannot read /nonexistent/cert.pem");

  TlsFiles half;
  half.cert_file = "/some/cert.pem";
  auto b = MakeServerCredentials(half, "--tls_*_file");
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(absl::StrContains(b.status().message(), "needs its key"));

  TlsFiles ca_only;
  ca_only.ca_file = "/some/ca.pem";
  EXPECT_FALSE(MakeServerCredentials(ca_only, "x").ok());

  const std::string not_pem = TempPath("not.pem");
  std::ofstream(not_pem) << "hello";
  TlsFiles garbage;
  garbage.ca_file = not_pem;
  auto c = MakeTlsChannelCredentials(garbage, "tls");
  ASSERT_FALSE(c.ok());
  EXPECT_TRUE(absl::StrContains(c.status().message(), "holds no PEM block"));

  TlsFiles plain;
  auto d = MakeServerCredentials(plain, "x");
  EXPECT_TRUE(d.ok());
}

}  // namespace
}  // namespace entitysync::testing
