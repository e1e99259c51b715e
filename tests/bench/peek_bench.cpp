// The cost of the check before every reuse of a pooled upstream connection
// (proxy/upstream/upstream_pool.cpp): one recv(MSG_PEEK | MSG_DONTWAIT) on an idle loopback
// TCP connection. Run: ./peek_bench --benchmark_min_time=1
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <benchmark/benchmark.h>
#include <cstdlib>

namespace {

// A connected loopback TCP pair; nothing is ever sent on it.
struct LoopbackPair {
  int client = -1, server = -1;
  LoopbackPair() {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listener, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(listener, 1) != 0 ||
        ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      std::abort();
    client = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) std::abort();
    server = ::accept(listener, nullptr, nullptr);
    ::close(listener);
  }
  ~LoopbackPair() {
    ::close(client);
    ::close(server);
  }
};

void BM_PeekIdleConnection(benchmark::State& state) {
  LoopbackPair pair;
  char byte;
  for (auto _ : state) {
    const ssize_t n = ::recv(pair.client, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    benchmark::DoNotOptimize(n);
  }
}
BENCHMARK(BM_PeekIdleConnection);

}  // namespace

BENCHMARK_MAIN();
