// HttpRecorder is a real HTTP/1.1 server for webhook tests: it records every
// request it receives and answers each with what a programmable responder
// says (status, Retry-After, a delay before answering). Keep-alive is
// honoured. One Asio thread; all methods are thread-safe.
#ifndef ENTITYSYNC_TESTS_ADAPTERS_WEBHOOK_HTTP_RECORDER_H_
#define ENTITYSYNC_TESTS_ADAPTERS_WEBHOOK_HTTP_RECORDER_H_

#include <boost/asio.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace entitysync::testing {

struct RecordedRequest {
  std::string method;
  std::string target;
  // Lower-case names.
  std::map<std::string, std::string> headers;
  std::string body;
  absl::Time received;
  // The status it was answered with.
  int status = 0;

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? "" : it->second;
  }
};

struct Answer {
  int status = 200;
  absl::Duration delay = absl::ZeroDuration();
  std::string retry_after;
};

class HttpRecorder {
 public:
  // index: the request's number, from 0.
  using Responder =
      std::function<Answer(const RecordedRequest& request, int index)>;

  // Listens on 127.0.0.1:port (0: any free port).
  explicit HttpRecorder(int port = 0);
  ~HttpRecorder();

  int port() const { return port_; }
  void SetResponder(Responder responder);
  std::vector<RecordedRequest> requests() const;
  // Waits until `count` requests have been answered.
  bool WaitForAnswered(size_t count,
                       absl::Duration timeout = absl::Seconds(20)) const;

 private:
  class Connection;

  void Accept();
  Answer Respond(RecordedRequest& request);
  void Answered();

  boost::asio::io_context io_;
  boost::asio::ip::tcp::acceptor acceptor_;
  int port_ = 0;
  std::thread thread_;

  mutable absl::Mutex mu_;
  Responder responder_ ABSL_GUARDED_BY(mu_);
  std::vector<RecordedRequest> requests_ ABSL_GUARDED_BY(mu_);
  size_t answered_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<std::weak_ptr<Connection>> connections_ ABSL_GUARDED_BY(mu_);
};

}  // namespace entitysync::testing

#endif  // ENTITYSYNC_TESTS_ADAPTERS_WEBHOOK_HTTP_RECORDER_H_
