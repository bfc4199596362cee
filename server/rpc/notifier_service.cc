#include "server/rpc/notifier_service.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "server/core/entity_key.h"
#include "server/resolve/resolve_scheduler.h"

namespace entitysync {
namespace {

absl::Status ValidateChange(const v1::Change& change, const Limits& limits,
                            const EntityTable& table) {
  if (absl::Status s = ValidateKey(change.key(), limits, KeyUse::kNotify);
      !s.ok()) {
    return s;
  }
  const EntityRoute* route = table.Find(change.key().entity());
  if (!table.open_mode() && route == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown entity '", change.key().entity(), "'"));
  }
  if (table.open_mode() && !change.has_rows()) {
    return absl::InvalidArgumentError(
        "no resolver is configured (open mode): include rows");
  }
  if (change.has_rows()) {
    const v1::Rows& rows = change.rows();
    if (rows.removed() && rows.rows_size() > 0) {
      return absl::InvalidArgumentError(
          "rows.removed is set but rows are given");
    }
    if (size_t bytes = RowBytes(rows.rows()); bytes > limits.max_row_bytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rows are ", bytes, " bytes; the limit is ", limits.max_row_bytes));
    }
    for (const v1::Row& row : rows.rows()) {
      if (row.content_type().size() > limits.max_content_type_bytes) {
        return absl::InvalidArgumentError(
            absl::StrCat("row content_type is over ",
                         limits.max_content_type_bytes, " bytes"));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateNotify(const v1::NotifyRequest& request,
                            const Limits& limits, const EntityTable& table) {
  if (request.changes_size() == 0) {
    return absl::InvalidArgumentError("changes is empty");
  }
  if (static_cast<size_t>(request.changes_size()) > limits.max_notify_changes) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch has ", request.changes_size(),
                     " changes; the limit is ", limits.max_notify_changes));
  }
  for (int i = 0; i < request.changes_size(); ++i) {
    if (absl::Status s = ValidateChange(request.changes(i), limits, table);
        !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "changes[", i, "] (", DescribeKey(request.changes(i).key()),
          "): ", s.message()));
    }
  }
  return absl::OkStatus();
}

NotifierService::NotifierService(const Limits* limits, const EntityTable* table,
                                 Bus* bus, std::string origin,
                                 LocalHandler local, ServerCounters* counters,
                                 ClusterOnceResolver* cluster,
                                 const InternalAuth* auth)
    : limits_(limits),
      table_(table),
      bus_(bus),
      origin_(std::move(origin)),
      local_(std::move(local)),
      counters_(counters),
      cluster_(cluster),
      auth_(auth) {}

void NotifierService::Listen(IoThreads* threads) {
  Call::ListenOnEach(
      threads,
      [this](auto&&... args) {
        RequestNotify(std::forward<decltype(args)>(args)...);
      },
      [this](Call* call) { Handle(call); }, /*notify_cancel=*/false, &methods_);
}

void NotifierService::Handle(Call* call) {
  const v1::NotifyRequest* request = &call->request();
  const absl::Time started = absl::Now();
  if (auth_ != nullptr) {
    if (grpc::Status s = auth_->Check(call->context()); !s.ok()) {
      call->Finish(s);
      return;
    }
  }
  if (absl::Status s = ValidateNotify(*request, *limits_, *table_); !s.ok()) {
    call->Finish(ToGrpcStatus(s));
    return;
  }
  const int64_t now = absl::ToUnixNanos(absl::Now());
  std::vector<v1::Notice> notices;
  notices.reserve(request->changes_size());
  std::vector<size_t> to_resolve;  // indices of cluster_once notices
  for (const v1::Change& change : request->changes()) {
    v1::Notice& notice = notices.emplace_back();
    *notice.mutable_key() = change.key();
    if (change.has_version()) notice.set_version(change.version());
    if (change.has_rows()) *notice.mutable_rows() = change.rows();
    notice.set_origin(origin_);
    notice.set_timestamp_unix_nanos(now);
    if (cluster_ != nullptr && !request->local_only() && !change.has_rows() &&
        ClusterOnceResolver::Applies(table_->Find(change.key().entity()))) {
      to_resolve.push_back(notices.size() - 1);
    }
  }
  if (to_resolve.empty()) {
    Publish(call, notices, request->local_only(), started);
    return;
  }
  std::vector<v1::Notice> resolving;
  resolving.reserve(to_resolve.size());
  for (size_t i : to_resolve) resolving.push_back(notices[i]);
  cluster_->Resolve(
      std::move(resolving), [this, call, plain = std::move(notices),
                             to_resolve = std::move(to_resolve),
                             started](std::vector<v1::Notice> resolved) {
        std::vector<v1::Notice> notices = plain;
        for (size_t j = 0; j < to_resolve.size(); ++j) {
          notices[to_resolve[j]] = std::move(resolved[j]);
        }
        Publish(call, notices, /*local_only=*/false, started, &plain);
      });
}

void NotifierService::Publish(Call* call,
                              const std::vector<v1::Notice>& notices,
                              bool local_only, absl::Time started,
                              const std::vector<v1::Notice>* plain) {
  uint32_t accepted = 0;
  absl::Status status;
  for (size_t i = 0; i < notices.size(); ++i) {
    if (local_only) {
      local_(notices[i]);
      ++accepted;
      continue;
    }
    status = bus_->Publish(notices[i]);
    // Resolved rows too large for the bus: every replica resolves instead.
    if (absl::IsResourceExhausted(status) && plain != nullptr &&
        (*plain)[i].has_rows() != notices[i].has_rows()) {
      status = bus_->Publish((*plain)[i]);
    }
    if (!status.ok()) break;
    ++accepted;
  }
  call->response()->set_accepted(accepted);
  if (counters_ != nullptr) {
    Bump(counters_->notices_published, accepted);
    counters_->notify_latency.Record(absl::Now() - started);
  }
  if (!status.ok()) {
    status = absl::UnavailableError(absl::StrCat(
        "bus unavailable (", status.message(), "): ", accepted, " of ",
        notices.size(), " changes were published; retry the rest"));
  }
  call->Finish(ToGrpcStatus(status));
}

}  // namespace entitysync
