// A fixed pool of worker threads for data-parallel loops. Sized to the machine, or to
// GLIMPSE_NUM_THREADS. Workers spin briefly before sleeping, because training issues many
// short kernels back to back and a condition-variable wake-up costs tens of microseconds.
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "common.h"

namespace glimpse {
namespace {

class ThreadPool {
 public:
  explicit ThreadPool(int n) { resize(n); }
  ~ThreadPool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    stop();
    shutdown_ = false;
    // The generation is read here, not in the new thread: a region started before the thread
    // first runs must still count as new to it.
    const uint64_t start = generation_.load(std::memory_order_acquire);
    for (int i = 1; i < n; i++) workers_.emplace_back([this, start] { worker(start); });
  }

  // Runs task(i) for i in [0, size()) and waits. Every thread, the caller included, claims tasks
  // from a shared counter, so a task no worker has picked up yet (its core is busy with another
  // process) is run by the caller rather than waited for.
  void run(const std::function<void(int)>& task) {
    if (workers_.empty()) {
      task(0);
      return;
    }
    std::unique_lock<std::mutex> run_lock(run_mutex_);  // one parallel region at a time
    const int n = size();
    const uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
    task_ = &task;
    ntasks_.store(n, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    claim_.store(gen << 32, std::memory_order_release);  // (generation, next task), claimed together
    {
      std::lock_guard<std::mutex> lk(mutex_);
      generation_.store(gen, std::memory_order_release);
    }
    cv_.notify_all();
    run_claims(gen);
    while (done_.load(std::memory_order_acquire) != n) std::this_thread::yield();
    task_ = nullptr;
  }

 private:
  // Runs the tasks of region gen that are still unclaimed; returns when none is left.
  void run_claims(uint64_t gen) {
    for (;;) {
      uint64_t c = claim_.load(std::memory_order_acquire);
      const int i = static_cast<int>(c & 0xffffffffu);
      if ((c >> 32) != (gen & 0xffffffffu) || i >= ntasks_.load(std::memory_order_relaxed)) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
      (*task_)(i);
      done_.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void worker(uint64_t seen) {
    for (;;) {
      // Spin for a while: the next kernel usually arrives within microseconds.
      int spins = 0;
      while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) {
        spins++;
#if defined(__x86_64__)
        __builtin_ia32_pause();
#endif
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mutex_);
        cv_.wait(lk, [&] { return generation_.load(std::memory_order_acquire) != seen || shutdown_; });
      }
      if (shutdown_) return;
      seen = generation_.load(std::memory_order_acquire);
      run_claims(seen);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mutex_);
      shutdown_ = true;
      generation_.fetch_add(1, std::memory_order_acq_rel);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mutex_, run_mutex_;
  std::condition_variable cv_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> ntasks_{0}, done_{0};
  const std::function<void(int)>* task_ = nullptr;
  volatile bool shutdown_ = false;
};

int default_threads() {
  if (const char* env = std::getenv("GLIMPSE_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hw = std::thread::hardware_concurrency();
  return hw > 0 ? static_cast<int>(hw) : 1;
}

ThreadPool& pool() {
  static ThreadPool p(default_threads());
  return p;
}

thread_local bool in_parallel_region = false;

}  // namespace

int num_threads() { return pool().size(); }
void set_num_threads(int n) { pool().resize(n < 1 ? 1 : n); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body) {
  if (n <= 0) return;
  int threads = num_threads();
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  // Nested regions run serially: the pool is already busy with the outer loop.
  if (threads == 1 || max_chunks < 2 || in_parallel_region) {
    body(0, n);
    return;
  }
  int chunks = static_cast<int>(max_chunks < threads ? max_chunks : threads);
  // An exception must not escape a worker (that would terminate the process) nor leave the
  // caller before every chunk is done: the first one is kept and rethrown at the end.
  std::exception_ptr error;
  std::mutex error_mutex;
  pool().run([&](int i) {
    if (i >= chunks) return;
    int64_t begin = n * i / chunks, end = n * (i + 1) / chunks;
    in_parallel_region = true;
    try {
      body(begin, end);
    } catch (...) {
      std::lock_guard<std::mutex> lk(error_mutex);
      if (!error) error = std::current_exception();
    }
    in_parallel_region = false;
  });
  if (error) std::rethrow_exception(error);
}

namespace {

struct NoArgs {};
struct SetThreadsArgs {
  int64_t n;
};

const Signature<NoArgs> kNumThreads{"numThreads", {}};
const Signature<SetThreadsArgs> kSetNumThreads{"setNumThreads", {arg::integer("n", &SetThreadsArgs::n)}};
const Signature<NoArgs> kHasAvx2Fma{"hasAvx2Fma", {}};
const Signature<NoArgs> kHasAvx512f{"hasAvx512f", {}};

napi_value get_num_threads(napi_env env, NoArgs&) { return make_number(env, num_threads()); }

napi_value set_threads(napi_env env, SetThreadsArgs& a) {
  set_num_threads(static_cast<int>(a.n));
  return undefined(env);
}

napi_value has_avx2(napi_env env, NoArgs&) { return make_boolean(env, cpu_has_avx2_fma()); }
napi_value has_avx512(napi_env env, NoArgs&) { return make_boolean(env, cpu_has_avx512f()); }

}  // namespace

void register_threadpool(napi_env env, napi_value exports) {
  export_kernel<kNumThreads, get_num_threads>(env, exports);
  export_kernel<kSetNumThreads, set_threads>(env, exports);
  export_kernel<kHasAvx2Fma, has_avx2>(env, exports);
  export_kernel<kHasAvx512f, has_avx512>(env, exports);
}

}  // namespace glimpse
