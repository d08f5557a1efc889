// SPDX-License-Identifier: MIT
//
// grpcpp-bench-server: the reference for `make bench` -- a C++ gRPC server built from Debian's
// libgrpc++-dev serving the same two unary methods as fsr-test-server:
//
//   grpc.health.v1.Health/Check      -> SERVING
//   fsrtest.v1.TestService/Echo      -> message and payload echoed back
//
// Two of gRPC C++'s fast APIs, chosen with MODE (default "callback"):
//
//   callback  CallbackService + ServerUnaryReactor (the DefaultReactor): handlers run inline
//             on gRPC's own event-engine threads; gRPC sizes that pool itself.
//   async     the completion-queue API: THREADS (default nproc) polling threads, one
//             ServerCompletionQueue each, PREPOST (default 256) requests pre-posted per method
//             per queue, each thread pulling from its own queue.
//
// Settings common to both: insecure credentials, no default health service (ours is
// registered instead, so both servers run the same handler shape), no reflection, default
// channel args otherwise (no max-concurrent-streams limit, no compression).  Two knobs that
// were tried and did not help on the 2-core bench machine, off by default:
// GRPCPP_MINIMAL_STACK=1 (GRPC_ARG_MINIMAL_STACK) and BDP_PROBE=0 (no HTTP/2 BDP pings).
// The port comes from argv[1] or PORT (0 = ephemeral); the bound port is printed on stdout
// ("port N") and written to PORT_FILE when set.  SIGTERM/SIGINT shut down cleanly.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <grpcpp/grpcpp.h>

#include "fsrtest.grpc.pb.h"
#include "health.grpc.pb.h"

using fsrtest::v1::EchoRequest;
using fsrtest::v1::EchoResponse;
using fsrtest::v1::TestService;
using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

namespace
{

void fill_echo(const EchoRequest &req, EchoResponse *resp)
{
    resp->set_message(req.message());
    resp->set_payload(req.payload());
}

// ---- callback API ---------------------------------------------------------------------------

class HealthCallback final : public Health::CallbackService
{
    grpc::ServerUnaryReactor *Check(grpc::CallbackServerContext *ctx, const HealthCheckRequest *,
                                    HealthCheckResponse *resp) override
    {
        resp->set_status(HealthCheckResponse::SERVING);
        grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
        r->Finish(grpc::Status::OK);
        return r;
    }
};

class TestCallback final : public TestService::CallbackService
{
    grpc::ServerUnaryReactor *Echo(grpc::CallbackServerContext *ctx, const EchoRequest *req,
                                   EchoResponse *resp) override
    {
        fill_echo(*req, resp);
        grpc::ServerUnaryReactor *r = ctx->DefaultReactor();
        r->Finish(grpc::Status::OK);
        return r;
    }
};

// ---- async (completion queue) API -----------------------------------------------------------

class Call
{
  public:
    virtual ~Call() = default;
    virtual void Proceed(bool ok) = 0;
};

template <class Svc, class Req, class Resp> class UnaryCall final : public Call
{
  public:
    using Request = void (Svc::AsyncService::*)(grpc::ServerContext *, Req *,
                                                grpc::ServerAsyncResponseWriter<Resp> *,
                                                grpc::CompletionQueue *,
                                                grpc::ServerCompletionQueue *, void *);
    using Handler = void (*)(const Req &, Resp *);

    UnaryCall(typename Svc::AsyncService *svc, grpc::ServerCompletionQueue *cq, Request request,
              Handler handler)
        : svc_(svc), cq_(cq), request_(request), handler_(handler), writer_(&ctx_)
    {
        (svc_->*request_)(&ctx_, &req_, &writer_, cq_, cq_, this);
    }

    void Proceed(bool ok) override
    {
        if (!ok || finished_) { // shutting down, or the reply went out
            if (ok)
                new UnaryCall(svc_, cq_, request_, handler_);
            delete this;
            return;
        }
        handler_(req_, &resp_);
        finished_ = true;
        writer_.Finish(resp_, grpc::Status::OK, this);
    }

  private:
    typename Svc::AsyncService *svc_;
    grpc::ServerCompletionQueue *cq_;
    Request request_;
    Handler handler_;
    grpc::ServerContext ctx_;
    Req req_;
    Resp resp_;
    grpc::ServerAsyncResponseWriter<Resp> writer_;
    bool finished_ = false;
};

void health_handler(const HealthCheckRequest &, HealthCheckResponse *resp)
{
    resp->set_status(HealthCheckResponse::SERVING);
}

void echo_handler(const EchoRequest &req, EchoResponse *resp)
{
    fill_echo(req, resp);
}

void drain(grpc::ServerCompletionQueue *cq)
{
    void *tag;
    bool ok;
    while (cq->Next(&tag, &ok))
        static_cast<Call *>(tag)->Proceed(ok);
}

std::atomic<bool> g_stop{ false };

void on_signal(int)
{
    g_stop.store(true);
}

int env_int(const char *name, int dflt)
{
    const char *v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::atoi(v) : dflt;
}

} // namespace

int main(int argc, char **argv)
{
    int port = argc > 1 ? std::atoi(argv[1]) : env_int("PORT", 0);
    const char *mode_env = std::getenv("MODE");
    std::string mode = mode_env != nullptr && *mode_env != '\0' ? mode_env : "callback";
    if (mode != "callback" && mode != "async") {
        std::fprintf(stderr, "grpcpp-bench-server: MODE must be callback or async\n");
        return 2;
    }
    int threads = env_int("THREADS", 0);
    if (threads <= 0)
        threads = static_cast<int>(std::thread::hardware_concurrency());
    if (threads <= 0)
        threads = 1;
    int prepost = env_int("PREPOST", 256);

    grpc::EnableDefaultHealthCheckService(false);
    grpc::ServerBuilder builder;
    int bound = 0;
    builder.AddListeningPort("0.0.0.0:" + std::to_string(port), grpc::InsecureServerCredentials(),
                             &bound);
    // Tuning knobs (see the header): GRPCPP_MINIMAL_STACK=1 drops the optional filters
    // (census, message-size, ...); BDP_PROBE=0 turns off HTTP/2 BDP pings.
    if (env_int("GRPCPP_MINIMAL_STACK", 0) != 0)
        builder.AddChannelArgument(GRPC_ARG_MINIMAL_STACK, 1);
    if (env_int("BDP_PROBE", 1) == 0)
        builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);

    HealthCallback health_cb;
    TestCallback test_cb;
    Health::AsyncService health_async;
    TestService::AsyncService test_async;
    std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
    if (mode == "callback") {
        builder.RegisterService(&health_cb);
        builder.RegisterService(&test_cb);
    } else {
        builder.RegisterService(&health_async);
        builder.RegisterService(&test_async);
        for (int i = 0; i < threads; i++)
            cqs.push_back(builder.AddCompletionQueue());
    }

    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    if (!server || bound == 0) {
        std::fprintf(stderr, "grpcpp-bench-server: cannot listen on port %d\n", port);
        return 1;
    }

    std::vector<std::thread> pollers;
    if (mode == "async") {
        for (auto &cq : cqs) {
            for (int i = 0; i < prepost; i++) {
                new UnaryCall<Health, HealthCheckRequest, HealthCheckResponse>(
                    &health_async, cq.get(), &Health::AsyncService::RequestCheck, health_handler);
                new UnaryCall<TestService, EchoRequest, EchoResponse>(
                    &test_async, cq.get(), &TestService::AsyncService::RequestEcho, echo_handler);
            }
        }
        for (auto &cq : cqs)
            pollers.emplace_back(drain, cq.get());
    }

    if (const char *pf = std::getenv("PORT_FILE"); pf != nullptr && *pf != '\0') {
        std::string tmp = std::string(pf) + ".tmp";
        if (FILE *f = std::fopen(tmp.c_str(), "w")) {
            std::fprintf(f, "%d\n", bound);
            std::fclose(f);
            std::rename(tmp.c_str(), pf);
        }
    }
    std::printf("port %d mode %s threads %d\n", bound, mode.c_str(), mode == "async" ? threads : 0);
    std::fflush(stdout);

    std::signal(SIGTERM, on_signal);
    std::signal(SIGINT, on_signal);
    while (!g_stop.load())
        usleep(100 * 1000);

    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
    for (auto &cq : cqs)
        cq->Shutdown();
    for (auto &t : pollers)
        t.join();
    return 0;
}
