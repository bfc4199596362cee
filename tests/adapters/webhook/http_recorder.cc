#include "tests/adapters/webhook/http_recorder.h"

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/time/clock.h"

namespace entitysync::testing {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

class HttpRecorder::Connection
    : public std::enable_shared_from_this<Connection> {
 public:
  Connection(HttpRecorder* owner, tcp::socket socket)
      : owner_(owner),
        socket_(std::move(socket)),
        timer_(socket_.get_executor()) {}

  void Read() {
    request_ = {};
    http::async_read(
        socket_, buffer_, request_,
        [self = shared_from_this()](beast::error_code error, size_t) {
          if (error) return self->Close();
          self->OnRequest();
        });
  }

  void Close() {
    beast::error_code ignored;
    timer_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

 private:
  void OnRequest() {
    RecordedRequest recorded;
    recorded.method = std::string(request_.method_string());
    recorded.target = std::string(request_.target());
    for (const auto& field : request_) {
      recorded
          .headers[absl::AsciiStrToLower(std::string(field.name_string()))] =
          std::string(field.value());
    }
    recorded.body = request_.body();
    recorded.received = absl::Now();
    Answer answer = owner_->Respond(recorded);
    response_ = {};
    response_.version(11);
    response_.result(static_cast<unsigned>(answer.status));
    response_.keep_alive(request_.keep_alive());
    if (!answer.retry_after.empty()) {
      response_.set(http::field::retry_after, answer.retry_after);
    }
    response_.body() = "ok";
    response_.prepare_payload();
    if (answer.delay > absl::ZeroDuration()) {
      timer_.expires_after(absl::ToChronoNanoseconds(answer.delay));
      timer_.async_wait([self = shared_from_this()](beast::error_code error) {
        if (error) return self->Close();
        self->Write();
      });
    } else {
      Write();
    }
  }

  void Write() {
    http::async_write(
        socket_, response_,
        [self = shared_from_this()](beast::error_code error, size_t) {
          self->owner_->Answered();
          if (error || !self->response_.keep_alive()) {
            return self->Close();
          }
          self->Read();
        });
  }

  HttpRecorder* owner_;
  tcp::socket socket_;
  net::steady_timer timer_;
  beast::flat_buffer buffer_;
  http::request<http::string_body> request_;
  http::response<http::string_body> response_;
};

HttpRecorder::HttpRecorder(int port) : acceptor_(io_) {
  tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"),
                         static_cast<unsigned short>(port));
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(net::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen();
  port_ = acceptor_.local_endpoint().port();
  Accept();
  thread_ = std::thread([this] { io_.run(); });
}

HttpRecorder::~HttpRecorder() {
  net::post(io_, [this] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    absl::MutexLock lock(&mu_);
    for (auto& weak : connections_) {
      if (auto connection = weak.lock()) connection->Close();
    }
  });
  io_.stop();
  thread_.join();
}

void HttpRecorder::Accept() {
  acceptor_.async_accept([this](beast::error_code error, tcp::socket socket) {
    if (error) return;
    auto connection = std::make_shared<Connection>(this, std::move(socket));
    {
      absl::MutexLock lock(&mu_);
      connections_.push_back(connection);
    }
    connection->Read();
    Accept();
  });
}

void HttpRecorder::SetResponder(Responder responder) {
  absl::MutexLock lock(&mu_);
  responder_ = std::move(responder);
}

Answer HttpRecorder::Respond(RecordedRequest& request) {
  absl::MutexLock lock(&mu_);
  Answer answer;
  if (responder_) {
    answer = responder_(request, static_cast<int>(requests_.size()));
  }
  request.status = answer.status;
  requests_.push_back(request);
  return answer;
}

void HttpRecorder::Answered() {
  absl::MutexLock lock(&mu_);
  ++answered_;
}

std::vector<RecordedRequest> HttpRecorder::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

bool HttpRecorder::WaitForAnswered(size_t count, absl::Duration timeout) const {
  auto enough = [this, count]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return answered_ >= count;
  };
  absl::MutexLock lock(&mu_);
  return mu_.AwaitWithTimeout(absl::Condition(&enough), timeout);
}

}  // namespace entitysync::testing
