// The optional MPI addon (glimpse_mpi, built only where mpicc is found; scripts/mpi-flags.sh).
// One communication thread owns MPI, as in Horovod: it calls MPI_Init_thread, runs every request
// in the order they were queued, and MPI_Finalize at the end. JavaScript queues a request and
// gets a Promise; the thread settles it through a thread-safe function, so the event loop runs
// while a collective is in progress. MPI therefore only needs MPI_THREAD_FUNNELED.
//
// Every Promise resolves with the seconds the communication thread spent in the request's MPI
// calls (allGather's result carries them as `seconds`): the time a collective took, as opposed to
// the time JavaScript waited for it, which tells how much of it was hidden behind other work.
//
// Buffers are the memory of the typed arrays passed in: each request holds a reference to them
// until it settles, and the caller must not touch them in between.
// The C API only: the deprecated C++ bindings live in another library (libmpi_cxx) not linked here.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#include <node_api.h>

#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

enum Kind { ALLREDUCE, REDUCESCATTER, BROADCAST, ALLGATHER, BARRIER, SEND, RECV, SENDRECV, STOP };
enum Op { SUM = 0, AVG = 1, MAX = 2 };

struct Request {
  Kind kind = BARRIER;
  int op = SUM;
  int peer = -1;       // root (broadcast), destination (send, sendRecv), source (recv)
  int peer2 = -1;      // sendRecv's source
  void* data = nullptr;      // allReduce/broadcast in place; send/allGather input; recv output
  int64_t bytes = 0;         // of data
  void* data2 = nullptr;     // sendRecv's receive buffer
  int64_t bytes2 = 0;
  std::vector<napi_ref> refs;
  napi_deferred deferred = nullptr;
  std::string error;
  // reduceScatter: the elements each rank receives. allGather: the bytes each rank sent.
  std::vector<int64_t> counts;
  std::vector<char> gathered;
  double seconds = 0;  // spent in run_request, on the communication thread
};

struct State {
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Request*> queue;
  bool ready = false;
  std::string init_error;
  int rank = 0, size = 1, local_rank = 0, local_size = 1;
  napi_threadsafe_function tsfn = nullptr;
  int pending = 0;  // requests not yet settled; touched on the JS thread only
  bool started = false, stopped = false;
};

State* g = nullptr;

Request* new_request(Kind kind) {
  Request* r = new Request();
  r->kind = kind;
  return r;
}

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, len);
}

#define CHECK_MPI(call)                                                   \
  do {                                                                    \
    int rc_ = (call);                                                     \
    if (rc_ != MPI_SUCCESS) {                                             \
      r->error = std::string(#call) + " failed: " + mpi_error(rc_);        \
      return;                                                             \
    }                                                                     \
  } while (0)

// MPI counts are int: larger messages go as several calls of at most this many elements.
constexpr int64_t kMaxCount = int64_t(1) << 30;

void run_request(Request* r) {
  switch (r->kind) {
    case ALLREDUCE: {
      float* p = static_cast<float*>(r->data);
      int64_t n = r->bytes / 4;
      MPI_Op op = r->op == MAX ? MPI_MAX : MPI_SUM;
      for (int64_t at = 0; at < n; at += kMaxCount) {
        int c = int(std::min(kMaxCount, n - at));
        CHECK_MPI(MPI_Allreduce(MPI_IN_PLACE, p + at, c, MPI_FLOAT, op, MPI_COMM_WORLD));
      }
      if (r->op == AVG) {
        float inv = 1.0f / float(g->size);
        for (int64_t i = 0; i < n; i++) p[i] *= inv;
      }
      return;
    }
    case REDUCESCATTER: {
      std::vector<int> counts(r->counts.begin(), r->counts.end());
      MPI_Op op = r->op == MAX ? MPI_MAX : MPI_SUM;
      CHECK_MPI(MPI_Reduce_scatter(r->data, r->data2, counts.data(), MPI_FLOAT, op, MPI_COMM_WORLD));
      if (r->op == AVG) {
        float* p = static_cast<float*>(r->data2);
        float inv = 1.0f / float(g->size);
        for (int64_t i = 0; i < r->bytes2 / 4; i++) p[i] *= inv;
      }
      return;
    }
    case BROADCAST: {
      char* p = static_cast<char*>(r->data);
      for (int64_t at = 0; at < r->bytes; at += kMaxCount) {
        int c = int(std::min(kMaxCount, r->bytes - at));
        CHECK_MPI(MPI_Bcast(p + at, c, MPI_BYTE, r->peer, MPI_COMM_WORLD));
      }
      return;
    }
    case ALLGATHER: {
      int64_t mine = r->bytes;
      r->counts.assign(g->size, 0);
      CHECK_MPI(MPI_Allgather(&mine, 1, MPI_INT64_T, r->counts.data(), 1, MPI_INT64_T, MPI_COMM_WORLD));
      int64_t total = 0;
      for (int64_t c : r->counts) total += c;
      if (total > INT32_MAX) {
        r->error = "allGather of " + std::to_string(total) + " bytes in all: at most 2 GiB is supported";
        return;
      }
      std::vector<int> counts(g->size), displs(g->size);
      for (int i = 0, at = 0; i < g->size; i++) {
        counts[i] = int(r->counts[i]);
        displs[i] = at;
        at += counts[i];
      }
      r->gathered.resize(size_t(total));
      CHECK_MPI(MPI_Allgatherv(r->data, int(mine), MPI_BYTE, r->gathered.data(), counts.data(), displs.data(), MPI_BYTE,
                               MPI_COMM_WORLD));
      return;
    }
    case BARRIER:
      CHECK_MPI(MPI_Barrier(MPI_COMM_WORLD));
      return;
    case SEND:
    case RECV:
    case SENDRECV: {
      // A message goes as chunks of at most kMaxCount bytes (one chunk when empty) with one tag; MPI
      // keeps the messages between two ranks in order, so the chunks arrive in sequence. Sender and
      // receiver must agree on the size, as in MPI.
      bool sends = r->kind != RECV, receives = r->kind != SEND;
      char* out = sends ? static_cast<char*>(r->data) : nullptr;
      char* in = static_cast<char*>(r->kind == RECV ? r->data : r->data2);
      int64_t sent = sends ? r->bytes : 0;
      int64_t received = r->kind == RECV ? r->bytes : (r->kind == SENDRECV ? r->bytes2 : 0);
      int dest = sends ? r->peer : MPI_PROC_NULL;
      int source = r->kind == RECV ? r->peer : (r->kind == SENDRECV ? r->peer2 : MPI_PROC_NULL);
      auto chunks = [](int64_t bytes) { return bytes == 0 ? int64_t(1) : (bytes + kMaxCount - 1) / kMaxCount; };
      int64_t n_out = sends ? chunks(sent) : 0, n_in = receives ? chunks(received) : 0;
      for (int64_t i = 0; i < std::max(n_out, n_in); i++) {
        int64_t at = i * kMaxCount;
        bool s = i < n_out, v = i < n_in;
        int cs = s ? int(std::min(kMaxCount, sent - at)) : 0;
        int cr = v ? int(std::min(kMaxCount, received - at)) : 0;
        MPI_Status status;
        CHECK_MPI(MPI_Sendrecv(s ? out + at : nullptr, cs, MPI_BYTE, s ? dest : MPI_PROC_NULL, 0, v ? in + at : nullptr, cr,
                               MPI_BYTE, v ? source : MPI_PROC_NULL, 0, MPI_COMM_WORLD, &status));
      }
      return;
    }
    case STOP:
      return;
  }
}

void comm_thread() {
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  {
    std::lock_guard<std::mutex> lock(g->mu);
    if (rc != MPI_SUCCESS) {
      g->init_error = "MPI_Init_thread failed (" + std::to_string(rc) + ")";
    } else {
      // Errors come back as return codes, so a failed call rejects its Promise instead of aborting.
      MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
      MPI_Comm_rank(MPI_COMM_WORLD, &g->rank);
      MPI_Comm_size(MPI_COMM_WORLD, &g->size);
      MPI_Comm local;
      MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g->rank, MPI_INFO_NULL, &local);
      MPI_Comm_rank(local, &g->local_rank);
      MPI_Comm_size(local, &g->local_size);
      MPI_Comm_free(&local);
    }
    g->ready = true;
  }
  g->cv.notify_all();
  if (rc != MPI_SUCCESS) return;
  for (;;) {
    Request* r;
    {
      std::unique_lock<std::mutex> lock(g->mu);
      g->cv.wait(lock, [] { return !g->queue.empty(); });
      r = g->queue.front();
      g->queue.pop_front();
    }
    if (r->kind == STOP) {
      delete r;
      break;
    }
    auto start = std::chrono::steady_clock::now();
    run_request(r);
    r->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    napi_call_threadsafe_function(g->tsfn, r, napi_tsfn_blocking);
  }
  MPI_Finalize();
}

void throw_error(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, ("glimpse_mpi: " + msg).c_str());
}

// Settles a finished request's Promise on the JS thread.
void settle(napi_env env, napi_value, void*, void* data) {
  Request* r = static_cast<Request*>(data);
  if (env) {
    for (napi_ref ref : r->refs) napi_delete_reference(env, ref);
    if (!r->error.empty()) {
      napi_value msg, err;
      napi_create_string_utf8(env, ("glimpse_mpi: " + r->error).c_str(), NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, nullptr, msg, &err);
      napi_reject_deferred(env, r->deferred, err);
    } else if (r->kind == ALLGATHER) {
      napi_value result, buffer, counts;
      void* dst = nullptr;
      napi_create_arraybuffer(env, r->gathered.size(), &dst, &buffer);
      if (!r->gathered.empty()) std::memcpy(dst, r->gathered.data(), r->gathered.size());
      napi_create_array_with_length(env, r->counts.size(), &counts);
      for (size_t i = 0; i < r->counts.size(); i++) {
        napi_value c;
        napi_create_double(env, double(r->counts[i]), &c);
        napi_set_element(env, counts, uint32_t(i), c);
      }
      napi_create_object(env, &result);
      napi_set_named_property(env, result, "buffer", buffer);
      napi_set_named_property(env, result, "counts", counts);
      napi_value seconds;
      napi_create_double(env, r->seconds, &seconds);
      napi_set_named_property(env, result, "seconds", seconds);
      napi_resolve_deferred(env, r->deferred, result);
    } else {
      napi_value seconds;
      napi_create_double(env, r->seconds, &seconds);
      napi_resolve_deferred(env, r->deferred, seconds);
    }
    // With no request in flight the thread-safe function must not keep the process alive.
    if (--g->pending == 0) napi_unref_threadsafe_function(env, g->tsfn);
  }
  delete r;
}

void stop(bool join) {
  if (!g || !g->started || g->stopped) return;
  g->stopped = true;
  {
    std::lock_guard<std::mutex> lock(g->mu);
    g->queue.push_back(new_request(STOP));
  }
  g->cv.notify_all();
  if (join && g->thread.joinable()) g->thread.join();
}

napi_value get_args(napi_env env, napi_callback_info info, size_t want, napi_value* argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc != want) {
    throw_error(env, "expected " + std::to_string(want) + " arguments, got " + std::to_string(argc));
    return nullptr;
  }
  return argv[0];
}

bool typed_bytes(napi_env env, napi_value v, const char* what, void** data, int64_t* bytes, bool float32_only) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) {
    throw_error(env, std::string(what) + " must be a typed array");
    return false;
  }
  napi_typedarray_type type;
  size_t length = 0;
  napi_get_typedarray_info(env, v, &type, &length, data, nullptr, nullptr);
  if (float32_only && type != napi_float32_array) {
    throw_error(env, std::string(what) + " must be a Float32Array");
    return false;
  }
  size_t elem = 1;
  switch (type) {
    case napi_int16_array: case napi_uint16_array: elem = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: elem = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: elem = 8; break;
    default: elem = 1;
  }
  *bytes = int64_t(length * elem);
  return true;
}

bool get_int(napi_env env, napi_value v, const char* what, int* out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    throw_error(env, std::string(what) + " must be a number");
    return false;
  }
  return true;
}

bool check_rank(napi_env env, int rank, const char* what) {
  if (rank < 0 || rank >= g->size) {
    throw_error(env, std::string(what) + " " + std::to_string(rank) + " is not a rank of this world (0.." +
                         std::to_string(g->size - 1) + ")");
    return false;
  }
  return true;
}

// Queues a request whose typed arrays are `holds`, and returns its Promise.
napi_value submit(napi_env env, Request* r, std::initializer_list<napi_value> holds) {
  if (!g || !g->started || g->stopped) {
    delete r;
    throw_error(env, "MPI is not initialised (call init first) or was finalised");
    return nullptr;
  }
  for (napi_value h : holds) {
    napi_ref ref;
    napi_create_reference(env, h, 1, &ref);
    r->refs.push_back(ref);
  }
  napi_value promise;
  napi_create_promise(env, &r->deferred, &promise);
  if (g->pending++ == 0) napi_ref_threadsafe_function(env, g->tsfn);
  {
    std::lock_guard<std::mutex> lock(g->mu);
    g->queue.push_back(r);
  }
  g->cv.notify_all();
  return promise;
}

napi_value js_init(napi_env env, napi_callback_info) {
  if (!g->started) {
    napi_value name;
    napi_create_string_utf8(env, "glimpse_mpi", NAPI_AUTO_LENGTH, &name);
    napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, settle, &g->tsfn);
    napi_unref_threadsafe_function(env, g->tsfn);
    g->started = true;
    g->thread = std::thread(comm_thread);
    std::unique_lock<std::mutex> lock(g->mu);
    g->cv.wait(lock, [] { return g->ready; });
  }
  if (!g->init_error.empty()) {
    throw_error(env, g->init_error);
    return nullptr;
  }
  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, g->rank, &v);
  napi_set_named_property(env, out, "rank", v);
  napi_create_int32(env, g->size, &v);
  napi_set_named_property(env, out, "size", v);
  napi_create_int32(env, g->local_rank, &v);
  napi_set_named_property(env, out, "localRank", v);
  napi_create_int32(env, g->local_size, &v);
  napi_set_named_property(env, out, "localSize", v);
  return out;
}

napi_value js_finalize(napi_env, napi_callback_info) {
  stop(true);
  return nullptr;
}

// allReduce(Float32Array, op): in place.
napi_value js_all_reduce(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  Request* r = new_request(ALLREDUCE);
  if (!typed_bytes(env, argv[0], "allReduce's buffer", &r->data, &r->bytes, true) || !get_int(env, argv[1], "allReduce's op", &r->op)) {
    delete r;
    return nullptr;
  }
  if (r->op != SUM && r->op != AVG && r->op != MAX) {
    delete r;
    throw_error(env, "allReduce's op must be 0 (sum), 1 (avg) or 2 (max)");
    return nullptr;
  }
  return submit(env, r, {argv[0]});
}

// reduceScatter(input Float32Array, output Float32Array, counts: elements per rank, op): rank r's
// output is the reduction of every rank's input elements counts[0] + ... + counts[r-1] onwards.
napi_value js_reduce_scatter(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return nullptr;
  Request* r = new_request(REDUCESCATTER);
  bool is_array = false;
  uint32_t n = 0;
  if (!typed_bytes(env, argv[0], "reduceScatter's input", &r->data, &r->bytes, true) ||
      !typed_bytes(env, argv[1], "reduceScatter's output", &r->data2, &r->bytes2, true) ||
      !get_int(env, argv[3], "reduceScatter's op", &r->op)) {
    delete r;
    return nullptr;
  }
  napi_is_array(env, argv[2], &is_array);
  if (is_array) napi_get_array_length(env, argv[2], &n);
  if (!is_array || int(n) != g->size) {
    delete r;
    throw_error(env, "reduceScatter's counts must be an array of one count per rank");
    return nullptr;
  }
  int64_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t c = -1;
    napi_get_element(env, argv[2], i, &v);
    napi_get_value_int64(env, v, &c);
    if (c < 0 || c > INT32_MAX) {
      delete r;
      throw_error(env, "reduceScatter's counts must be between 0 and 2^31-1");
      return nullptr;
    }
    r->counts.push_back(c);
    total += c;
  }
  if (total * 4 != r->bytes || r->counts[g->rank] * 4 != r->bytes2) {
    delete r;
    throw_error(env, "reduceScatter's counts must sum to the input's length, and this rank's count be the output's length");
    return nullptr;
  }
  return submit(env, r, {argv[0], argv[1]});
}

// broadcast(typed array, root): in place.
napi_value js_broadcast(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  Request* r = new_request(BROADCAST);
  if (!typed_bytes(env, argv[0], "broadcast's buffer", &r->data, &r->bytes, false) || !get_int(env, argv[1], "broadcast's root", &r->peer) ||
      !check_rank(env, r->peer, "broadcast's root")) {
    delete r;
    return nullptr;
  }
  return submit(env, r, {argv[0]});
}

// allGather(typed array) -> {buffer: ArrayBuffer, counts: bytes from each rank}.
napi_value js_all_gather(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, 1, argv)) return nullptr;
  Request* r = new_request(ALLGATHER);
  if (!typed_bytes(env, argv[0], "allGather's buffer", &r->data, &r->bytes, false)) {
    delete r;
    return nullptr;
  }
  return submit(env, r, {argv[0]});
}

napi_value js_barrier(napi_env env, napi_callback_info) {
  return submit(env, new_request(BARRIER), {});
}

// send(typed array, dest)
napi_value js_send(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  Request* r = new_request(SEND);
  if (!typed_bytes(env, argv[0], "send's buffer", &r->data, &r->bytes, false) || !get_int(env, argv[1], "send's destination", &r->peer) ||
      !check_rank(env, r->peer, "send's destination")) {
    delete r;
    return nullptr;
  }
  return submit(env, r, {argv[0]});
}

// recv(typed array, source): fills the array.
napi_value js_recv(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!get_args(env, info, 2, argv)) return nullptr;
  Request* r = new_request(RECV);
  if (!typed_bytes(env, argv[0], "recv's buffer", &r->data, &r->bytes, false) || !get_int(env, argv[1], "recv's source", &r->peer) ||
      !check_rank(env, r->peer, "recv's source")) {
    delete r;
    return nullptr;
  }
  return submit(env, r, {argv[0]});
}

// sendRecv(send array, dest, recv array, source)
napi_value js_send_recv(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (!get_args(env, info, 4, argv)) return nullptr;
  Request* r = new_request(SENDRECV);
  if (!typed_bytes(env, argv[0], "sendRecv's send buffer", &r->data, &r->bytes, false) ||
      !get_int(env, argv[1], "sendRecv's destination", &r->peer) || !check_rank(env, r->peer, "sendRecv's destination") ||
      !typed_bytes(env, argv[2], "sendRecv's receive buffer", &r->data2, &r->bytes2, false) ||
      !get_int(env, argv[3], "sendRecv's source", &r->peer2) || !check_rank(env, r->peer2, "sendRecv's source")) {
    delete r;
    return nullptr;
  }
  return submit(env, r, {argv[0], argv[2]});
}

// At environment teardown the thread is stopped so that MPI_Finalize runs: Open MPI reports a
// process that exits without it as a failed job.
void cleanup(void*) {
  stop(true);
}

napi_value init_module(napi_env env, napi_value exports) {
  if (!g) g = new State();
  napi_add_env_cleanup_hook(env, cleanup, nullptr);
  struct { const char* name; napi_callback fn; } fns[] = {
      {"init", js_init}, {"finalize", js_finalize}, {"allReduce", js_all_reduce}, {"reduceScatter", js_reduce_scatter}, {"broadcast", js_broadcast},
      {"allGather", js_all_gather}, {"barrier", js_barrier}, {"send", js_send}, {"recv", js_recv},
      {"sendRecv", js_send_recv},
  };
  for (auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.fn, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, init_module)
