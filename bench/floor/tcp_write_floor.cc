// Calibration: the floor of "one write per delivery" over loopback TCP, the
// yardstick for a transport's server CPU per delivery. No entitysync code.
// This process, the writer, holds --connections TCP connections (TCP_NODELAY)
// and per change writes one --message_bytes message to each, one send() per
// message; a reader process forked at start holds the other ends and reads
// everything (epoll, 64 KiB reads). Changes come at --rate per second on an
// open-loop schedule (change k is due at t0 + k / rate; late ones go out at
// once), or back to back with --rate=0.
//
// A message starts with its change's due time (CLOCK_MONOTONIC ns, little
// endian), so the reader measures latency = receive time - due time for the
// changes due in the window (--duration after --warmup). CPU (getrusage, user
// + system) is the writer's from its first change in the window to the
// window's end, and the reader's from then until every byte has arrived. On
// loopback the writer's figure includes the receiving side's TCP work, which
// the kernel does in the sender's context.
//
// A send that would block (a full send buffer; not expected at the loads this
// measures) is counted in `would_block`, then the writer waits for room, so
// that every message arrives whole and the bytes can be checked. Prints
//   RESULT {"connections":n,"rate":r,"message_bytes":b,"changes":n,
//           "writes":n,"duration_seconds":x,"writes_per_second":x,
//           "writer_cpu_us_per_write":x,"reader_cpu_us_per_write":x,
//           "writer_cpu_seconds":x,"reader_cpu_seconds":x,
//           "latency_ms":{"count":n,"p50":x,"p99":x,"max":x},
//           "would_block":n,"missing_bytes":n}
// changes and writes are the window's; would_block and missing_bytes (written,
// never read) the whole run's. Single-threaded processes; not a library.
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/status_macros.h"

ABSL_FLAG(int, connections, 1000, "Loopback TCP connections.");
ABSL_FLAG(double, rate, 100,
          "Changes per second, one write per connection each; 0: back to "
          "back (closed loop).");
ABSL_FLAG(int, message_bytes, 100, "Bytes per write (at least 8).");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Not measured.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Measured.");

namespace entitysync {
namespace bench {
namespace {

constexpr size_t kStampBytes = 8;
constexpr int kTimeoutMs = 30000;

int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return tv.tv_sec + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// As bench/json.h's JsonNumber, which is private to //bench.
std::string JsonNumber(double v, int decimals = 3) {
  return std::isfinite(v) ? absl::StrFormat("%.*f", decimals, v) : "0";
}

// Writer to reader, one per SOCK_SEQPACKET message.
struct Control {
  enum Kind : int64_t { kPlan, kStart, kEnd };
  Kind kind;
  // kPlan: the window's first due time; messages stamped at or after it are
  // the window's. kEnd: bytes written over the whole run.
  int64_t value;
};

// Reader to writer, once every byte has arrived (or none came for
// kTimeoutMs).
struct ReaderReport {
  double cpu_seconds = 0;  // From kStart to the last byte.
  int64_t bytes = 0;       // The whole run.
  int64_t latency_count = 0;
  int64_t p50_ns = 0, p99_ns = 0, max_ns = 0;
};

void EncodeStamp(int64_t due, std::string* message) {
  for (size_t b = 0; b < kStampBytes; ++b) {
    (*message)[b] = static_cast<char>(due >> (8 * b));
  }
}

int64_t DecodeStamp(const unsigned char* stamp) {
  uint64_t due = 0;
  for (int b = kStampBytes - 1; b >= 0; --b) due = due << 8 | stamp[b];
  return static_cast<int64_t>(due);
}

// One connection's place in its stream of fixed-size messages.
struct ReadState {
  int fd = -1;
  uint64_t received = 0;
  unsigned char stamp[kStampBytes];
};

int64_t Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  auto nth = v.begin() + static_cast<size_t>(q * (v.size() - 1));
  std::nth_element(v.begin(), nth, v.end());
  return *nth;
}

absl::StatusOr<ReaderReport> RunReader(const sockaddr_in& address, int control,
                                       int connections, size_t message_bytes) {
  const int epoll = epoll_create1(0);
  if (epoll < 0) return ErrnoError("epoll_create1");
  std::vector<ReadState> conns(connections);
  for (int i = 0; i <= connections; ++i) {
    int fd = control;
    if (i < connections) {
      fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) return ErrnoError("socket");
      if (connect(fd, reinterpret_cast<const sockaddr*>(&address),
                  sizeof(address)) != 0) {
        return ErrnoError("connect");
      }
      fcntl(fd, F_SETFL, O_NONBLOCK);
      conns[i].fd = fd;
    }
    epoll_event event{};
    event.events = EPOLLIN;
    event.data.u64 = static_cast<uint64_t>(i);  // connections: the control.
    if (epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) != 0) {
      return ErrnoError("epoll_ctl");
    }
  }
  std::vector<unsigned char> buffer(1 << 16);
  std::vector<epoll_event> events(256);
  std::vector<int64_t> latencies;
  int64_t window_start = std::numeric_limits<int64_t>::max();
  int64_t received = 0;
  int64_t expected = -1;  // Known at kEnd.
  double cpu_start = CpuSeconds();
  while (expected < 0 || received < expected) {
    const int n = epoll_wait(epoll, events.data(), events.size(),
                             expected < 0 ? -1 : kTimeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoError("epoll_wait");
    if (n == 0) break;  // Draining, and nothing came: report what arrived.
    for (int e = 0; e < n; ++e) {
      const uint64_t index = events[e].data.u64;
      if (index == static_cast<uint64_t>(connections)) {
        Control c;
        if (recv(control, &c, sizeof(c), 0) != sizeof(c)) {
          return absl::AbortedError("the writer went away");
        }
        if (c.kind == Control::kPlan) window_start = c.value;
        if (c.kind == Control::kStart) cpu_start = CpuSeconds();
        if (c.kind == Control::kEnd) expected = c.value;
        continue;
      }
      // Level-triggered: one read per wake-up; the rest, if any, wakes us
      // again.
      ReadState& conn = conns[index];
      const ssize_t r = read(conn.fd, buffer.data(), buffer.size());
      if (r < 0 && errno == EAGAIN) continue;
      if (r < 0) return ErrnoError("read");
      if (r == 0) return absl::AbortedError("the writer closed a connection");
      const int64_t now = MonotonicNanos();
      received += r;
      for (size_t i = 0; i < static_cast<size_t>(r);) {
        const size_t at = conn.received % message_bytes;
        const size_t end = at < kStampBytes ? kStampBytes : message_bytes;
        const size_t take = std::min(end - at, static_cast<size_t>(r) - i);
        if (at < kStampBytes) std::memcpy(conn.stamp + at, &buffer[i], take);
        i += take;
        conn.received += take;
        if (at + take != kStampBytes) continue;
        const int64_t due = DecodeStamp(conn.stamp);
        if (due >= window_start) latencies.push_back(now - due);
      }
    }
  }
  ReaderReport report;
  report.cpu_seconds = CpuSeconds() - cpu_start;
  report.bytes = received;
  report.latency_count = static_cast<int64_t>(latencies.size());
  report.p50_ns = Percentile(latencies, 0.50);
  report.p99_ns = Percentile(latencies, 0.99);
  report.max_ns = Percentile(latencies, 1.0);
  return report;
}

absl::Status SendControl(int control, Control::Kind kind, int64_t value) {
  const Control c{kind, value};
  if (send(control, &c, sizeof(c), MSG_NOSIGNAL) != sizeof(c)) {
    return ErrnoError("send to the reader");
  }
  return absl::OkStatus();
}

// One send of `message`; if the send buffer is full, counts it in
// *would_block and sends the rest when there is room.
absl::Status WriteMessage(int fd, const std::string& message,
                          int64_t* would_block) {
  ssize_t n = send(fd, message.data(), message.size(), MSG_NOSIGNAL);
  if (n == static_cast<ssize_t>(message.size())) return absl::OkStatus();
  ++*would_block;
  size_t done = 0;
  while (true) {
    if (n < 0 && errno != EAGAIN && errno != EINTR) return ErrnoError("send");
    if (n > 0) done += static_cast<size_t>(n);
    if (done == message.size()) return absl::OkStatus();
    pollfd room{fd, POLLOUT, 0};
    if (poll(&room, 1, kTimeoutMs) == 0) {
      return absl::DeadlineExceededError("no room to send for 30 s");
    }
    n = send(fd, message.data() + done, message.size() - done, MSG_NOSIGNAL);
  }
}

// Accepts `connections` from the reader; fails if it exits first.
absl::StatusOr<std::vector<int>> Accept(int listener, int control,
                                        int connections) {
  std::vector<int> fds;
  while (static_cast<int>(fds.size()) < connections) {
    pollfd ready[2] = {{listener, POLLIN, 0}, {control, POLLIN, 0}};
    if (poll(ready, 2, kTimeoutMs) <= 0 || ready[1].revents != 0) {
      return absl::UnavailableError(absl::StrCat("the reader opened ",
                                                 fds.size(), " of ",
                                                 connections, " connections"));
    }
    const int fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
    if (fd < 0) return ErrnoError("accept4");
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    fds.push_back(fd);
  }
  return fds;
}

absl::Status RunWriter(const std::vector<int>& fds, int control) {
  const double rate = absl::GetFlag(FLAGS_rate);
  const int64_t t0 = MonotonicNanos();
  const int64_t start =
      t0 + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_warmup));
  const int64_t end =
      start + absl::ToInt64Nanoseconds(absl::GetFlag(FLAGS_duration));
  RETURN_IF_ERROR(SendControl(control, Control::kPlan, start));
  std::string message(static_cast<size_t>(absl::GetFlag(FLAGS_message_bytes)),
                      'x');
  int64_t all_writes = 0, would_block = 0, changes = 0, writes = 0;
  int64_t window_opened = 0;
  double cpu_start = 0;
  for (int64_t k = 0;; ++k) {
    int64_t due = MonotonicNanos();
    if (rate > 0) {
      due = t0 + std::llround(static_cast<double>(k) * 1e9 / rate);
      const timespec at{static_cast<time_t>(due / 1000000000),
                        static_cast<long>(due % 1000000000)};
      while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, nullptr) ==
             EINTR) {
      }
    }
    if (due >= end) break;
    if (window_opened == 0 && due >= start) {
      cpu_start = CpuSeconds();
      window_opened = MonotonicNanos();
      RETURN_IF_ERROR(SendControl(control, Control::kStart, 0));
    }
    EncodeStamp(due, &message);
    for (int fd : fds) {
      RETURN_IF_ERROR(WriteMessage(fd, message, &would_block));
    }
    all_writes += fds.size();
    if (window_opened != 0) {
      ++changes;
      writes += fds.size();
    }
  }
  const double writer_cpu = CpuSeconds() - cpu_start;
  const double seconds = (MonotonicNanos() - window_opened) / 1e9;
  const int64_t written = all_writes * static_cast<int64_t>(message.size());
  RETURN_IF_ERROR(SendControl(control, Control::kEnd, written));
  ReaderReport r;
  pollfd reply{control, POLLIN, 0};
  if (poll(&reply, 1, 2 * kTimeoutMs) <= 0 ||
      recv(control, &r, sizeof(r), 0) != sizeof(r)) {
    return absl::UnavailableError("no report from the reader");
  }
  const double per_write = writes > 0 ? 1e6 / writes : 0;
  std::printf(
      "RESULT %s\n",
      absl::StrCat(
          "{\"connections\":", fds.size(), ",\"rate\":", JsonNumber(rate),
          ",\"message_bytes\":", message.size(), ",\"changes\":", changes,
          ",\"writes\":", writes, ",\"duration_seconds\":", JsonNumber(seconds),
          ",\"writes_per_second\":",
          JsonNumber(seconds > 0 ? writes / seconds : 0, 1),
          ",\"writer_cpu_us_per_write\":", JsonNumber(writer_cpu * per_write),
          ",\"reader_cpu_us_per_write\":",
          JsonNumber(r.cpu_seconds * per_write),
          ",\"writer_cpu_seconds\":", JsonNumber(writer_cpu),
          ",\"reader_cpu_seconds\":", JsonNumber(r.cpu_seconds),
          ",\"latency_ms\":{\"count\":", r.latency_count, ",\"p50\":",
          JsonNumber(r.p50_ns / 1e6), ",\"p99\":", JsonNumber(r.p99_ns / 1e6),
          ",\"max\":", JsonNumber(r.max_ns / 1e6), "},\"would_block\":",
          would_block, ",\"missing_bytes\":", written - r.bytes, "}")
          .c_str());
  return absl::OkStatus();
}

absl::Status Run() {
  const int connections = absl::GetFlag(FLAGS_connections);
  const int message_bytes = absl::GetFlag(FLAGS_message_bytes);
  if (connections < 1 || message_bytes < static_cast<int>(kStampBytes) ||
      !(absl::GetFlag(FLAGS_rate) >= 0)) {
    return absl::InvalidArgumentError(
        "needs --connections >= 1, --message_bytes >= 8 and --rate >= 0");
  }
  // Each process holds one end of every connection.
  rlimit fds;
  getrlimit(RLIMIT_NOFILE, &fds);
  fds.rlim_cur = fds.rlim_max;
  setrlimit(RLIMIT_NOFILE, &fds);
  if (static_cast<rlim_t>(connections) + 64 > fds.rlim_cur) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "--connections=", connections, " needs about ", connections + 64,
        " file descriptors; the limit is ", fds.rlim_cur, " (ulimit -Hn)"));
  }
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  if (listener < 0 ||
      bind(listener, reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      listen(listener, SOMAXCONN) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) !=
          0) {
    return ErrnoError("listen on 127.0.0.1:0");
  }
  int control[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET, 0, control) != 0) {
    return ErrnoError("socketpair");
  }
  const pid_t reader = fork();
  if (reader < 0) return ErrnoError("fork");
  if (reader == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    close(listener);
    close(control[0]);
    absl::StatusOr<ReaderReport> report =
        RunReader(address, control[1], connections, message_bytes);
    if (!report.ok()) {
      std::fprintf(stderr, "reader: %s\n", report.status().ToString().c_str());
      _exit(1);
    }
    send(control[1], &*report, sizeof(*report), MSG_NOSIGNAL);
    _exit(0);
  }
  close(control[1]);
  absl::StatusOr<std::vector<int>> accepted =
      Accept(listener, control[0], connections);
  absl::Status status = accepted.status();
  if (accepted.ok()) status = RunWriter(*accepted, control[0]);
  if (!status.ok()) kill(reader, SIGKILL);
  waitpid(reader, nullptr, 0);
  return status;
}

}  // namespace
}  // namespace bench
}  // namespace entitysync

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::Status status = entitysync::bench::Run();
  if (!status.ok()) {
    std::fprintf(stderr, "%s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
