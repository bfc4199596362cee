// AwaitCall: one EntitySync.Await long poll, served on gRPC's async API (an
// UnaryServerCall on the I/O thread that accepted it).
//
// It is a Subscriber of one key for as long as it waits: registered in the
// hub before its subscribe-time resolve (which authorizes the call's
// credentials and gives the current version), so that no change between the
// resolve and the wait is missed. It answers with the first of:
//  - the snapshot, when after_version is absent or the snapshot is newer;
//  - the first update delivered with a version above after_version (changes
//    that arrive during the resolve are held, the newest kept);
//  - timed_out with the current version, when the timeout passes (a
//    grpc::Alarm; nothing sleeps);
//  - an error: the resolve's (PERMISSION_DENIED, NOT_FOUND, UNAVAILABLE...),
//    PERMISSION_DENIED when access is revoked while it waits, CANCELLED when
//    the client goes, or the status Close is given (drain, shutdown).
// `stale` signals are not an answer: the call keeps waiting (the timeout
// bounds it), since a long poller can do nothing better than ask again.
//
// Lifetime: a shared_ptr that keeps itself alive until its call is done;
// the hub, the resolve callback and the alarm may hold or reach it
// meanwhile. The first answer wins: it unregisters from the hub exactly once
// (under mu_) and finishes the call exactly once (with no lock held; the
// answer is written on the call's thread). Thread-safe: Start and the
// cancel notice run on the call's I/O thread, Deliver on scheduler threads.
// Lock order: AwaitCall::mu_ before hub shard locks; nothing calls in while
// holding a hub or scheduler lock.
#ifndef ENTITYSYNC_SERVER_RPC_AWAIT_CALL_H_
#define ENTITYSYNC_SERVER_RPC_AWAIT_CALL_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "entitysync/v1/entitysync.pb.h"
#include "grpcpp/alarm.h"
#include "grpcpp/server_context.h"
#include "server/core/limits.h"
#include "server/fanout/hub.h"
#include "server/resolve/entity_table.h"
#include "server/resolve/resolve_scheduler.h"
#include "server/rpc/await_registry.h"
#include "server/session/outbound_message.h"
#include "server/transport/grpc/unary_server_call.h"

namespace entitysync {

// What every Await call shares; owned by the server, outlives all calls.
struct AwaitDeps {
  const Limits* limits = nullptr;
  const EntityTable* table = nullptr;
  Hub* hub = nullptr;
  ResolveScheduler* scheduler = nullptr;
  AwaitRegistry* registry = nullptr;
};

class AwaitCall : public Subscriber,
                  public std::enable_shared_from_this<AwaitCall> {
 public:
  using Call = UnaryServerCall<v1::AwaitRequest, v1::AwaitResponse>;

  // Serves `call` (on its thread; the method notifies cancellation): waits,
  // or answers at once for a bad request (INVALID_ARGUMENT, NOT_FOUND) or a
  // refusal (RESOURCE_EXHAUSTED at --max_awaits, UNAVAILABLE while
  // draining).
  static void Start(Call* call, const AwaitDeps& deps);

  AwaitCall(Call* call, absl::Duration timeout, const AwaitDeps& deps);
  ~AwaitCall() override;

  void Deliver(const OutboundMessage& msg) override;
  // Ends the call with `status` unless it has answered already.
  void Close(const grpc::Status& status);

 private:
  void OnCancel();
  void OnDone();

  void ArmTimer();
  // Registers in the hub and asks for the snapshot.
  void Begin(const std::string& credentials);
  void OnSnapshot(absl::StatusOr<Snapshot> snapshot);
  void OnTimeout();
  // The client waits for versions above this.
  bool IsNewer(uint64_t version) const;
  // Records the answer and unregisters from the hub; the caller then calls
  // Complete with no lock held. Only while !answered_.
  void AnswerLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Answers with a delivered update (its serialized SubscribeResponse).
  void AnswerMessageLocked(const OutboundMessage& msg)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Complete(const grpc::Status& status);

  // Const after construction.
  const AwaitDeps deps_;
  const v1::EntityKey key_;
  const std::string key_string_;
  const std::optional<uint64_t> after_version_;
  const absl::Duration timeout_;
  // Valid until the call is finished; answered once.
  Call* const call_;
  // The call's; written once, by the answer.
  v1::AwaitResponse* const response_;
  grpc::Alarm alarm_;

  // Kept until the call is done.
  std::shared_ptr<AwaitCall> self_;

  absl::Mutex mu_;
  bool answered_ ABSL_GUARDED_BY(mu_) = false;
  bool registered_ ABSL_GUARDED_BY(mu_) = false;
  // The subscribe-time resolve has not answered yet.
  bool resolving_ ABSL_GUARDED_BY(mu_) = true;
  uint64_t current_version_ ABSL_GUARDED_BY(mu_) = 0;
  // The newest update delivered while resolving.
  std::optional<OutboundMessage> held_ ABSL_GUARDED_BY(mu_);
};

// Ends every pending Await with `status` and refuses new ones with it (drain
// and shutdown: clients call again, on another replica).
void CloseAllAwaits(AwaitRegistry* registry, const grpc::Status& status);

}  // namespace entitysync

#endif  // ENTITYSYNC_SERVER_RPC_AWAIT_CALL_H_
