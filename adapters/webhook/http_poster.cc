#include "adapters/webhook/http_poster.h"

#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace entitysync {
namespace webhook {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

// One request: its connection, buffers and callback.
struct HttpPoster::Exchange {
  std::unique_ptr<beast::tcp_stream> stream;
  bool reused = false;
  bool done = false;
  std::chrono::steady_clock::time_point deadline;
  http::request<http::string_body> request;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  Callback callback;
};

absl::Duration ParseRetryAfter(beast::string_view value) {
  int64_t seconds = 0;
  if (!absl::SimpleAtoi(absl::string_view(value.data(), value.size()),
                        &seconds) ||
      seconds < 0) {
    return absl::ZeroDuration();
  }
  return absl::Seconds(std::min<int64_t>(seconds, 24 * 3600));
}

HttpPoster::HttpPoster(Executor executor, HttpUrl url, absl::Duration timeout,
                       size_t max_idle)
    : executor_(std::move(executor)),
      url_(std::move(url)),
      timeout_(timeout),
      max_idle_(max_idle),
      resolver_(executor_) {}

void HttpPoster::Post(std::string body, const Headers& headers, Callback done) {
  auto exchange = std::make_shared<Exchange>();
  exchange->callback = std::move(done);
  exchange->deadline =
      std::chrono::steady_clock::now() + absl::ToChronoMilliseconds(timeout_);
  http::request<http::string_body>& request = exchange->request;
  request.method(http::verb::post);
  request.target(url_.target);
  request.version(11);
  request.set(http::field::host, url_.host_header);
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = std::move(body);
  request.keep_alive(true);
  request.prepare_payload();
  if (closed_) {
    Finish(exchange, PostResult{0, "relay stopping"});
    return;
  }
  active_.erase(std::remove_if(active_.begin(), active_.end(),
                               [](const std::weak_ptr<Exchange>& weak) {
                                 return weak.expired();
                               }),
                active_.end());
  active_.push_back(exchange);
  if (!idle_.empty()) {
    exchange->stream = std::move(idle_.back());
    idle_.pop_back();
    exchange->reused = true;
    Write(exchange);
    return;
  }
  Connect(exchange);
}

void HttpPoster::Connect(std::shared_ptr<Exchange> exchange) {
  exchange->stream = std::make_unique<beast::tcp_stream>(executor_);
  exchange->reused = false;
  resolver_.async_resolve(
      url_.host, url_.port,
      [this, self = shared_from_this(), exchange](
          beast::error_code error, tcp::resolver::results_type results) {
        if (exchange->done) return;
        if (error) return Fail(exchange, "resolve", error);
        exchange->stream->expires_at(exchange->deadline);
        exchange->stream->async_connect(results, [this, self, exchange](
                                                     beast::error_code error,
                                                     const tcp::endpoint&) {
          if (exchange->done) return;
          if (error) return Fail(exchange, "connect", error);
          // A kept-alive connection's next request must not wait for
          // the delayed ACK of the previous one (Nagle).
          beast::error_code ignored;
          exchange->stream->socket().set_option(tcp::no_delay(true), ignored);
          Write(exchange);
        });
      });
}

void HttpPoster::Write(std::shared_ptr<Exchange> exchange) {
  exchange->stream->expires_at(exchange->deadline);
  http::async_write(*exchange->stream, exchange->request,
                    [this, self = shared_from_this(), exchange](
                        beast::error_code error, size_t) {
                      if (exchange->done) return;
                      if (error) return Fail(exchange, "write", error);
                      Read(exchange);
                    });
}

void HttpPoster::Read(std::shared_ptr<Exchange> exchange) {
  exchange->parser.emplace();
  exchange->parser->body_limit(1 << 20);
  exchange->buffer.clear();
  http::async_read(
      *exchange->stream, exchange->buffer, *exchange->parser,
      [this, self = shared_from_this(), exchange](beast::error_code error,
                                                  size_t) {
        if (exchange->done) return;
        // A body past the limit still answers the request: the status line
        // decides (a 2xx is a delivery); the connection, mid-body, closes.
        const bool body_too_large = error == http::error::body_limit &&
                                    exchange->parser->is_header_done();
        if (error && !body_too_large) return Fail(exchange, "read", error);
        const http::response<http::string_body>& response =
            exchange->parser->get();
        PostResult result;
        result.status = static_cast<int>(response.result_int());
        auto retry_after = response.find(http::field::retry_after);
        if (retry_after != response.end()) {
          result.retry_after = ParseRetryAfter(retry_after->value());
        }
        if (!body_too_large && response.keep_alive() && !closed_ &&
            idle_.size() < max_idle_) {
          exchange->stream->expires_never();
          idle_.push_back(std::move(exchange->stream));
        }
        Finish(exchange, std::move(result));
      });
}

void HttpPoster::Fail(std::shared_ptr<Exchange> exchange,
                      const std::string& step, beast::error_code error) {
  // A kept-alive connection the server closed meanwhile fails on first use:
  // try once more on a new connection (webhooks are at-least-once anyway).
  const bool stale_connection =
      exchange->reused && error != beast::error::timeout &&
      (step == "write" ||
       (step == "read" && exchange->parser && !exchange->parser->got_some()));
  if (stale_connection && !closed_) {
    Connect(exchange);
    return;
  }
  PostResult result;
  result.error = error == beast::error::timeout
                     ? absl::StrCat(step, ": timed out")
                     : absl::StrCat(step, ": ", error.message());
  Finish(exchange, std::move(result));
}

void HttpPoster::Finish(std::shared_ptr<Exchange> exchange, PostResult result) {
  if (exchange->done) return;
  exchange->done = true;
  if (exchange->stream) {
    beast::error_code ignored;
    exchange->stream->socket().close(ignored);
  }
  Callback callback = std::move(exchange->callback);
  if (callback) callback(std::move(result));
}

void HttpPoster::Close() {
  closed_ = true;
  idle_.clear();
  resolver_.cancel();
  for (const std::weak_ptr<Exchange>& weak : active_) {
    if (std::shared_ptr<Exchange> exchange = weak.lock()) {
      Finish(exchange, PostResult{0, "relay stopping"});
    }
  }
  active_.clear();
}

}  // namespace webhook
}  // namespace entitysync
