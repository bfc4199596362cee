// grpc-health-check: asks a server's grpc.health.v1.Health/Check, like the
// kubelet's native gRPC probe does, and exits 0 only for SERVING.
//
//   grpc-health-check [--service=NAME] [--timeout=SECONDS] HOST:PORT
//
// Prints the status (SERVING, NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN) or the
// call's error. Exit status: 0 SERVING, 1 anything else (not serving, call
// failed, unknown service), 2 usage error.
//
// Used by deploy/local (HAProxy's external check takes a draining replica out
// of rotation, as Kubernetes' readiness probe does), by tests/deploy (the
// probes of the manifests answer), and shipped in the image for clusters
// without native gRPC probes (an `exec` probe). The health proto is not
// installed with Debian's gRPC, so the messages are spoken on the wire:
// HealthCheckRequest{service} is field 1 (string), HealthCheckResponse{status}
// field 1 (varint).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"

namespace {

constexpr int kUsage = 2;

int Usage(const char* message) {
  std::fprintf(stderr,
               "grpc-health-check: %s\n"
               "usage: grpc-health-check [--service=NAME] [--timeout=SECONDS] "
               "HOST:PORT\n",
               message);
  return kUsage;
}

std::string Request(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;  // proto3: the default is not sent
  bytes.push_back(0x0a);              // field 1, length-delimited
  size_t n = service.size();
  while (n >= 0x80) {
    bytes.push_back(static_cast<char>((n & 0x7f) | 0x80));
    n >>= 7;
  }
  bytes.push_back(static_cast<char>(n));
  bytes += service;
  return bytes;
}

// The status field of a HealthCheckResponse; -1 when it cannot be read.
// Unknown fields are skipped as the protobuf wire format allows.
int StatusOf(const std::string& bytes) {
  int status = 0;  // absent: UNKNOWN
  size_t i = 0;
  auto varint = [&](uint64_t* value) {
    *value = 0;
    for (int shift = 0; shift < 64 && i < bytes.size(); shift += 7) {
      const uint8_t b = static_cast<uint8_t>(bytes[i++]);
      *value |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  };
  while (i < bytes.size()) {
    uint64_t tag = 0;
    uint64_t value = 0;
    if (!varint(&tag)) return -1;
    switch (tag & 7) {
      case 0:
        if (!varint(&value)) return -1;
        if ((tag >> 3) == 1) status = static_cast<int>(value);
        break;
      case 1:
        i += 8;
        break;
      case 2:
        if (!varint(&value) || value > bytes.size() - i) return -1;
        i += value;
        break;
      case 5:
        i += 4;
        break;
      default:
        return -1;
    }
  }
  return i == bytes.size() ? status : -1;
}

const char* StatusName(int status) {
  switch (status) {
    case 0:
      return "UNKNOWN";
    case 1:
      return "SERVING";
    case 2:
      return "NOT_SERVING";
    case 3:
      return "SERVICE_UNKNOWN";
    default:
      return "UNRECOGNIZED";
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string service;
  std::string target;
  double timeout_seconds = 2;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--service=", 0) == 0) {
      service = arg.substr(10);
    } else if (arg.rfind("--timeout=", 0) == 0) {
      char* end = nullptr;
      timeout_seconds = std::strtod(arg.c_str() + 10, &end);
      if (end == arg.c_str() + 10 || *end != '\0' || !(timeout_seconds > 0)) {
        return Usage("--timeout takes a positive number of seconds");
      }
    } else if (arg == "--help" || arg == "-h") {
      Usage("asks grpc.health.v1.Health/Check; exit 0 only for SERVING");
      return 0;
    } else if (arg.rfind("--", 0) == 0) {
      return Usage(("unknown flag " + arg).c_str());
    } else if (target.empty()) {
      target = arg;
    } else {
      return Usage("one HOST:PORT only");
    }
  }
  if (target.empty()) return Usage("HOST:PORT missing");

  grpc::GenericStub stub(
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(
      std::chrono::system_clock::now() +
      std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000)));
  const std::string request_bytes = Request(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::CompletionQueue cq;
  auto call = stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check",
                                    request, &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  call->Finish(&reply, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) {
    std::printf("error: %s: %s\n", target.c_str(),
                status.error_message().c_str());
    return 1;
  }
  std::vector<grpc::Slice> slices;
  std::string bytes;
  if (reply.Dump(&slices).ok()) {
    for (const grpc::Slice& s : slices) {
      bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  const int health = StatusOf(bytes);
  if (health < 0) {
    std::printf("error: %s: unreadable HealthCheckResponse\n", target.c_str());
    return 1;
  }
  std::printf("%s\n", StatusName(health));
  return health == 1 ? 0 : 1;
}
