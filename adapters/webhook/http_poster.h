// HttpPoster sends POST requests to one HTTP endpoint with Boost.Beast,
// asynchronously, and keeps finished keep-alive connections for reuse (at
// most max_idle). A request that fails on a reused connection before any
// answer (the server closed it while idle) is sent once more on a fresh one.
//
// Every request has one deadline for resolve-free connect, write and read
// (`timeout`). The result is the HTTP status, or 0 with a transport error
// ("connect: Connection refused", "timeout"). A response body past 1 MiB is
// not read: the status line still counts and the connection is closed.
// Error texts never contain request headers.
//
// Threading: Post and Close must be called on `executor` (a strand); the
// callback runs on it. Owned through shared_ptr: requests in flight keep the
// poster alive.
#ifndef ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_POSTER_H_
#define ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_POSTER_H_

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "adapters/webhook/http_url.h"

namespace entitysync {
namespace webhook {

struct PostResult {
  // 0: no answer; `error` says why.
  int status = 0;
  std::string error;
  // From a Retry-After header in seconds; zero when absent.
  absl::Duration retry_after = absl::ZeroDuration();
};

class HttpPoster : public std::enable_shared_from_this<HttpPoster> {
 public:
  using Executor = boost::asio::strand<boost::asio::io_context::executor_type>;
  using Headers = std::vector<std::pair<std::string, std::string>>;
  using Callback = std::function<void(PostResult)>;

  HttpPoster(Executor executor, HttpUrl url, absl::Duration timeout,
             size_t max_idle);

  void Post(std::string body, const Headers& headers, Callback done);

  // Closes idle connections and aborts requests in flight (their callbacks
  // run with an error). Later Posts fail at once.
  void Close();

 private:
  struct Exchange;

  void Connect(std::shared_ptr<Exchange> exchange);
  void Write(std::shared_ptr<Exchange> exchange);
  void Read(std::shared_ptr<Exchange> exchange);
  void Fail(std::shared_ptr<Exchange> exchange, const std::string& step,
            boost::beast::error_code error);
  void Finish(std::shared_ptr<Exchange> exchange, PostResult result);

  // Const after construction.
  const Executor executor_;
  const HttpUrl url_;
  const absl::Duration timeout_;
  const size_t max_idle_;

  // Used on executor_ only.
  boost::asio::ip::tcp::resolver resolver_;
  std::vector<std::unique_ptr<boost::beast::tcp_stream>> idle_;
  std::vector<std::weak_ptr<Exchange>> active_;
  bool closed_ = false;
};

// Seconds in a Retry-After value; HTTP dates and junk give zero.
absl::Duration ParseRetryAfter(boost::beast::string_view value);

}  // namespace webhook
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_WEBHOOK_HTTP_POSTER_H_
