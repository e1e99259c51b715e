// A hang detector for the fuzz targets that does not depend on libFuzzer's SIGALRM handler.
// That handler prints and saves the unit from inside the signal; when the hanging code was
// interrupted inside malloc (yaml-cpp growing a vector forever, say), it deadlocks on the
// allocator's lock and the reproducer is lost. This watchdog is a thread that uses only
// system calls: when one input has run for GP_FUZZ_HANG_SECONDS (default 8, below the
// -timeout=10 of scripts/fuzz.sh), it writes the input to <artifact_prefix>hang-unit, prints
// it in base64 and exits with 70 (libFuzzer's timeout exit code).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <thread>

namespace gp::fuzz {

class Watchdog {
 public:
  // Call from LLVMFuzzerInitialize with its arguments (for -artifact_prefix=).
  static void start(int* argc, char*** argv) {
    auto& w = instance();
    std::string_view prefix;
    for (int i = 1; argc && argv && i < *argc; ++i) {
      std::string_view a = (*argv)[i];
      if (a.starts_with("-artifact_prefix=")) prefix = a.substr(17);
    }
    constexpr std::string_view kName = "hang-unit";
    if (prefix.size() + kName.size() < sizeof w.path_) {
      if (!prefix.empty()) std::memcpy(w.path_, prefix.data(), prefix.size());
      std::memcpy(w.path_ + prefix.size(), kName.data(), kName.size() + 1);
    }
    if (const char* s = std::getenv("GP_FUZZ_HANG_SECONDS")) w.limit_ = std::atoi(s);
    if (w.limit_ <= 0) return;  // 0 disables the watchdog
    std::thread([&w] { w.run(); }).detach();
  }

  // Brackets one input.
  struct Scope {
    Scope(const std::uint8_t* data, std::size_t size) {
      auto& w = instance();
      w.data_.store(data, std::memory_order_relaxed);
      w.size_.store(size, std::memory_order_relaxed);
      w.generation_.fetch_add(1, std::memory_order_release);
      w.busy_.store(true, std::memory_order_release);
    }
    ~Scope() { instance().busy_.store(false, std::memory_order_release); }
  };

 private:
  static Watchdog& instance() {
    static Watchdog w;
    return w;
  }

  void run() {
    std::uint64_t seen = 0;
    int seconds = 0;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::seconds(1));
      const std::uint64_t g = generation_.load(std::memory_order_acquire);
      if (!busy_.load(std::memory_order_acquire) || g != seen) {
        seen = g;
        seconds = 0;
        continue;
      }
      if (++seconds >= limit_) fire();
    }
  }

  static void say(std::string_view s) { (void)!::write(2, s.data(), s.size()); }

  [[noreturn]] void fire() {
    const auto* data = data_.load(std::memory_order_relaxed);
    const std::size_t size = size_.load(std::memory_order_relaxed);
    say("\n==gp-fuzz-watchdog== ERROR: one input has run for GP_FUZZ_HANG_SECONDS: a hang\n");
    const int fd = ::open(path_, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      for (std::size_t off = 0; off < size;) {
        const ssize_t n = ::write(fd, data + off, size - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
      }
      ::close(fd);
      say("Test unit written to ");
      say(path_);
      say("\n");
    }
    say("Base64: ");
    static constexpr char kB64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char out[4];
    for (std::size_t i = 0; i < size; i += 3) {
      const std::uint32_t b0 = data[i];
      const std::uint32_t b1 = i + 1 < size ? data[i + 1] : 0;
      const std::uint32_t b2 = i + 2 < size ? data[i + 2] : 0;
      const std::uint32_t v = (b0 << 16) | (b1 << 8) | b2;
      out[0] = kB64[(v >> 18) & 63];
      out[1] = kB64[(v >> 12) & 63];
      out[2] = i + 1 < size ? kB64[(v >> 6) & 63] : '=';
      out[3] = i + 2 < size ? kB64[v & 63] : '=';
      say(std::string_view(out, 4));
    }
    say("\nSUMMARY: gp-fuzz-watchdog: timeout\n");
    ::_exit(70);
  }

  std::atomic<const std::uint8_t*> data_{nullptr};
  std::atomic<std::size_t> size_{0};
  std::atomic<std::uint64_t> generation_{0};
  std::atomic<bool> busy_{false};
  int limit_ = 8;
  char path_[4096] = "hang-unit";
};

}  // namespace gp::fuzz
