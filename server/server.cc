#include "server/server.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "adapters/bus/in_process_bus.h"
#include "common/log.h"
#include "grpcpp/ext/health_check_service_server_builder_option.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "server/core/entity_key.h"
#include "server/rpc/admin_service.h"
#include "server/rpc/await_call.h"
#include "server/rpc/notifier_service.h"
#include "server/rpc/subscribe_service.h"

namespace entitysync {

// Tells the bus which keys this replica has subscribers for.
class EntitySyncServer::BusInterest : public InterestListener {
 public:
  explicit BusInterest(Bus* bus) : bus_(bus) {}
  void AddInterest(const std::string& entity, const std::string& id) override {
    bus_->AddInterest(entity, id);
  }
  void RemoveInterest(const std::string& entity,
                      const std::string& id) override {
    bus_->RemoveInterest(entity, id);
  }

 private:
  Bus* const bus_;
};

namespace {

// Serves server reflection on one ServerBuilder (the internal port's) and
// not on another (the public port's). Linking grpc++_reflection registers
// the plugin for every server of the process, so this option first removes
// it, then adds it back where wanted.
class Reflection : public grpc::ServerBuilderOption {
 public:
  explicit Reflection(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>*
                         plugins) override {
    grpc::reflection::ProtoServerReflectionPlugin reflection;
    const std::string name = reflection.name();
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [&](const auto& plugin) {
                                    return plugin->name() == name;
                                  }),
                   plugins->end());
    if (enabled_) {
      plugins->push_back(
          std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
    }
  }

 private:
  const bool enabled_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<EntitySyncServer>> EntitySyncServer::Start(
    ServerOptions options) {
  std::unique_ptr<EntitySyncServer> server(
      new EntitySyncServer(std::move(options)));
  if (absl::Status s = server->Init(); !s.ok()) return s;
  return server;
}

EntitySyncServer::EntitySyncServer(ServerOptions options)
    : options_(std::move(options)) {
  absl::BitGen gen;
  origin_ = absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
}

EntitySyncServer::~EntitySyncServer() { Shutdown(absl::ZeroDuration()); }

absl::Status EntitySyncServer::Init() {
  // The I/O threads' queues belong to the public server, and resolver calls
  // run on them too, so they exist before anything that starts calls.
  grpc::ServerBuilder public_builder;
  const int io_threads =
      options_.io_threads > 0
          ? options_.io_threads
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  io_threads_ = std::make_unique<IoThreads>(&public_builder, io_threads);
  for (const v1::EntityConfig& entity : options_.config.entities()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        channels_.Get(entity.resolver());
    if (!channel.ok()) return channel.status();
    table_.Add(entity, std::make_shared<GrpcResolverClient>(*std::move(channel),
                                                            io_threads_.get()));
  }
  if (options_.config.has_passthrough()) {
    absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
        channels_.Get(options_.config.passthrough());
    if (!channel.ok()) return channel.status();
    passthrough_ = std::make_unique<PassthroughClient>(
        *std::move(channel),
        absl::Milliseconds(options_.config.passthrough().timeout_ms()),
        io_threads_.get());
  }
  bus_ =
      options_.bus ? std::move(options_.bus) : std::make_unique<InProcessBus>();
  interest_ = std::make_unique<BusInterest>(bus_.get());
  hub_ = std::make_unique<Hub>(interest_.get());
  executor_ = std::make_unique<Executor>(options_.executor_threads);
  options_.scheduler.max_row_bytes = options_.limits.max_row_bytes;
  // Flushes run on an I/O thread, so the resolver's answer arrives on the
  // thread that started the call and the writes of its streams start there.
  options_.scheduler.post_flush =
      [threads = io_threads_.get()](std::function<void()> flush) {
        threads->Pick().Post(std::move(flush));
      };
  scheduler_ = std::make_unique<ResolveScheduler>(
      &table_, hub_.get(), executor_.get(), &clock_, options_.scheduler);
  registry_ = std::make_unique<SessionRegistry>(
      options_.limits.max_streams, options_.limits.new_stream_rate_per_second,
      options_.limits.new_stream_burst);
  dispatcher_ = std::make_unique<NoticeDispatcher>(
      options_.notice_queue_capacity,
      [this](const v1::Notice& notice) { OnNotice(notice); },
      [this] {
        Log(LogLevel::kWarning,
            "notice queue full: notices dropped, resyncing");
        scheduler_->ResyncAll();
      });

  SessionDeps& deps = session_deps_;
  deps.limits = &options_.limits;
  deps.table = &table_;
  deps.hub = hub_.get();
  deps.scheduler = scheduler_.get();
  deps.registry = registry_.get();
  deps.passthrough = passthrough_.get();
  deps.counters = &counters_;
  awaits_ = std::make_unique<AwaitRegistry>(options_.limits.max_awaits);
  AwaitDeps await_deps;
  await_deps.limits = &options_.limits;
  await_deps.table = &table_;
  await_deps.hub = hub_.get();
  await_deps.scheduler = scheduler_.get();
  await_deps.registry = awaits_.get();
  auto subscribe_service = std::make_unique<SubscribeService>(deps, await_deps);
  cluster_ = std::make_unique<ClusterOnceResolver>(
      &table_, options_.limits.max_row_bytes,
      [this](const std::string& entity, absl::Time started, bool ok) {
        scheduler_->RecordCall(entity, started, ok);
      });
  reauthorizer_ = std::make_unique<Reauthorizer>(
      &table_, hub_.get(), executor_.get(), options_.reauthorize_interval,
      /*max_calls_in_flight=*/4,
      [this](const std::string& entity, absl::Time started, bool ok) {
        scheduler_->RecordCall(entity, started, ok);
      });
  notifier_service_ = std::make_unique<NotifierService>(
      &options_.limits, &table_, bus_.get(), origin_,
      [this](const v1::Notice& notice) { dispatcher_->Enqueue(notice); },
      &counters_, cluster_.get(), &options_.internal_auth);

  admin_service_ = std::make_unique<AdminService>(
      origin_, hub_.get(), scheduler_.get(), registry_.get(), bus_.get(),
      &options_.internal_auth);

  {
    grpc::ServerBuilder& builder = public_builder;
    // The public port serves Subscribe and nothing else: no health service
    // (probes use the internal port) and no reflection.
    builder.SetOption(
        std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    builder.SetOption(std::make_unique<Reflection>(false));
    builder.AddListeningPort(options_.public_address,
                             options_.public_credentials
                                 ? options_.public_credentials
                                 : grpc::InsecureServerCredentials(),
                             &public_port_);
    const auto ms = [](absl::Duration d) {
      return static_cast<int>(absl::ToInt64Milliseconds(d));
    };
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS,
                               ms(options_.max_connection_age));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
                               ms(options_.max_connection_age_grace));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                               ms(options_.keepalive_time));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                               ms(options_.keepalive_timeout));
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(
        GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS,
        ms(options_.min_client_ping_interval));
    builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                               options_.max_concurrent_streams);
    if (options_.small_read_buffers) {
      builder.AddChannelArgument(GRPC_ARG_TCP_READ_CHUNK_SIZE, 1024);
      builder.AddChannelArgument(GRPC_ARG_TCP_MIN_READ_CHUNK_SIZE, 256);
      builder.AddChannelArgument(GRPC_ARG_TCP_MAX_READ_CHUNK_SIZE, 4096);
    }
    // A port in use is an error, not a port silently shared (SO_REUSEPORT).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(options_.limits.max_request_bytes));
    builder.RegisterService(subscribe_service.get());
    public_server_ = builder.BuildAndStart();
    if (!public_server_ || public_port_ == 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", options_.public_address, " (public)"));
    }
    subscribe_service->Listen(io_threads_.get());
    io_threads_->Start();
    subscribe_service_ = std::move(subscribe_service);
  }
  {
    grpc::ServerBuilder builder;
    builder.AddListeningPort(options_.internal_address,
                             options_.internal_credentials
                                 ? options_.internal_credentials
                                 : grpc::InsecureServerCredentials(),
                             &internal_port_);
    // A port in use is an error, not a port silently shared (SO_REUSEPORT).
    builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
    builder.SetMaxReceiveMessageSize(
        static_cast<int>(options_.limits.max_request_bytes));
    // Reflection is a sync service: it brings gRPC's sync-server threads,
    // which poll beside the I/O threads. Off unless asked for.
    builder.SetOption(std::make_unique<Reflection>(options_.reflection));
    // gRPC's own health service runs on the callback API; ours does not.
    builder.SetOption(
        std::make_unique<grpc::HealthCheckServiceServerBuilderOption>(nullptr));
    builder.RegisterService(notifier_service_.get());
    builder.RegisterService(admin_service_.get());
    builder.RegisterService(&health_);
    // Notify and Admin are light: one thread of their own.
    internal_io_threads_ = std::make_unique<IoThreads>(&builder, 1);
    internal_server_ = builder.BuildAndStart();
    if (!internal_server_ || internal_port_ == 0) {
      public_server_->Shutdown();
      return absl::UnavailableError(absl::StrCat(
          "cannot listen on ", options_.internal_address, " (internal)"));
    }
    health_.Listen(internal_io_threads_.get());
    notifier_service_->Listen(internal_io_threads_.get());
    admin_service_->Listen(internal_io_threads_.get());
    internal_io_threads_->Start();
  }
  SetServing(false);
  // Liveness stays SERVING while the process runs: a NATS outage or a drain
  // makes a replica unready, never a candidate for a restart.
  health_.SetServingStatus(std::string(kLivenessService), true);
  BusHandlers handlers;
  // Bus threads only enqueue: they must never block.
  handlers.on_notice = [this](const v1::Notice& notice) {
    dispatcher_->Enqueue(notice);
  };
  handlers.on_resync = [this] {
    executor_->Post([this] { scheduler_->ResyncAll(); });
  };
  handlers.on_state = [this](BusState state) {
    Log(LogLevel::kInfo, absl::StrCat("bus ", BusStateName(state)));
    if (state == BusState::kConnected &&
        bus_was_connected_.exchange(true, std::memory_order_relaxed) &&
        bus_lost_.exchange(false, std::memory_order_relaxed)) {
      Bump(counters_.bus_reconnects);
    } else if (state != BusState::kConnected) {
      bus_lost_.store(true, std::memory_order_relaxed);
    }
    SetServing(state == BusState::kConnected);
  };
  if (absl::Status s = bus_->Start(std::move(handlers)); !s.ok()) {
    public_server_->Shutdown();
    internal_server_->Shutdown();
    return s;
  }
  reauthorizer_->Start();
  return absl::OkStatus();
}

void EntitySyncServer::OnNotice(const v1::Notice& notice) {
  // Notices from the bus come from other processes: check before use.
  if (!ValidateKey(notice.key(), options_.limits, KeyUse::kNotify).ok()) return;
  Bump(counters_.notices_received);
  scheduler_->OnNotice(notice);
}

void EntitySyncServer::SetServing(bool serving) {
  health_.SetServingStatus("", serving);
}

void EntitySyncServer::Drain(absl::Duration grace) {
  const absl::Time deadline = absl::Now() + grace;
  SetServing(false);
  if (registry_) {
    // Long polls cannot be told to move: they end now and call again.
    if (awaits_) {
      CloseAllAwaits(awaits_.get(),
                     grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                  "this replica is draining; call again"));
    }
    const size_t streams = registry_->size();
    registry_->StartDraining(
        std::min(options_.goaway_reconnect_within, grace / 2));
    const bool empty = registry_->WaitUntilEmpty(deadline);
    Log(LogLevel::kInfo,
        absl::StrCat(
            "drain: ", streams, " streams told to move; ",
            empty ? "all gone" : "grace period over, closing the rest"));
  }
  Shutdown(std::max(deadline - absl::Now(), absl::ZeroDuration()));
}

void EntitySyncServer::Shutdown(absl::Duration grace) {
  {
    absl::MutexLock lock(&shutdown_mu_);
    if (shut_down_) return;
    shut_down_ = true;
  }
  // Every step checks its part: Shutdown also runs after a failed Init.
  SetServing(false);
  if (registry_) {
    registry_->CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                     "server is shutting down; reconnect"));
  }
  if (awaits_) {
    CloseAllAwaits(awaits_.get(),
                   grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                "server is shutting down; call again"));
  }
  const absl::Time deadline = absl::Now() + grace;
  // Resolver calls and pass-through calls end by their deadline at the latest.
  const absl::Duration calls = MaxBackendTimeout() + absl::Seconds(1);
  // Notify calls waiting for a cluster_once resolve publish their notices
  // as they are, while the bus and the internal server are still up.
  if (cluster_) cluster_->Shutdown(calls);
  for (grpc::Server* server : {public_server_.get(), internal_server_.get()}) {
    if (server != nullptr) server->Shutdown(absl::ToChronoTime(deadline));
  }
  if (bus_) bus_->Stop();
  dispatcher_.reset();
  if (reauthorizer_) reauthorizer_->Shutdown(calls);
  if (scheduler_) scheduler_->Shutdown(calls);
  if (passthrough_) passthrough_->Drain(calls);
  // Last of the gRPC parts: server calls (cancelled by Shutdown above) and
  // client calls (waited for above) complete on these threads.
  if (io_threads_) io_threads_->Shutdown();
  if (internal_io_threads_) internal_io_threads_->Shutdown();
  executor_.reset();
  absl::MutexLock lock(&shutdown_mu_);
  stopped_ = true;
}

absl::Duration EntitySyncServer::MaxBackendTimeout() const {
  uint32_t ms = options_.config.passthrough().timeout_ms();
  for (const v1::EntityConfig& entity : options_.config.entities()) {
    ms = std::max(ms, entity.resolver().timeout_ms());
  }
  return absl::Milliseconds(ms);
}

void EntitySyncServer::Wait() {
  absl::MutexLock lock(&shutdown_mu_);
  shutdown_mu_.Await(absl::Condition(&stopped_));
}

std::shared_ptr<grpc::Channel> EntitySyncServer::PublicInProcessChannel(
    int max_message_bytes) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message_bytes);
  return public_server_->InProcessChannel(args);
}

}  // namespace entitysync
