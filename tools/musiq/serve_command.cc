// musiq serve: an HTTP/1.1 scoring service (cpp-httplib). Connection workers read and
// decode the images; one Batcher runs them through the model in packed passes. This file:
// the options, the listening socket, the signals and the order of shutdown.
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <thread>

#include "engine/musiq.h"
#include "tools/musiq/commands.h"
#include "tools/musiq/precision_option.h"
#include "tools/musiq/serve_connections.h"
#include "tools/musiq/serve_service.h"
#include "tools/musiq/stop_signals.h"

namespace musiq::cli {
namespace {

// cpp-httplib (a shared library in Debian) listens with a backlog of 5: a burst of clients
// overflows it, and their connections stall for a second or are reset. Its socket is not
// exposed, so it is found among ours, the listening TCP socket on `port`, and listen(2)
// again raises the backlog. Without it the server still works, as it did before.
void raise_listen_backlog(int port) {
  DIR* fds = opendir("/proc/self/fd");
  if (!fds) return;
  while (const dirent* entry = readdir(fds)) {
    const int fd = std::atoi(entry->d_name);
    int listening = 0;
    socklen_t size = sizeof listening;
    sockaddr_storage address{};
    socklen_t address_size = sizeof address;
    if (fd <= 2 || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &size) != 0 ||
        !listening || getsockname(fd, reinterpret_cast<sockaddr*>(&address), &address_size) != 0)
      continue;
    const int bound = address.ss_family == AF_INET
                          ? ntohs(reinterpret_cast<const sockaddr_in&>(address).sin_port)
                      : address.ss_family == AF_INET6
                          ? ntohs(reinterpret_cast<const sockaddr_in6&>(address).sin6_port)
                          : -1;
    if (bound == port) listen(fd, SOMAXCONN);
  }
  closedir(fds);
}

int run_serve(ServeOptions o) {
  if (o.api_key.empty()) {
    const char* key = std::getenv("MUSIQ_API_KEY");
    if (key) o.api_key = key;
  }
  parse_device_kind(o.device);  // bad names fail before the port is taken
  parse_precision(o.precision);
  // Only the watcher below receives SIGINT and SIGTERM: block them before any thread starts.
  const sigset_t signals = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  ScoringService service(o);
  httplib::Server server;
  const size_t max_connections = static_cast<size_t>(o.max_connections);
  server.new_task_queue = [max_connections] { return new ConnectionPool(max_connections, 2); };
  server.set_read_timeout(o.read_timeout_s, 0);
  server.set_write_timeout(o.read_timeout_s, 0);
  server.set_keep_alive_timeout(o.read_timeout_s);
  server.set_payload_max_length(static_cast<size_t>(o.max_body_bytes));
  service.install(server);
  const int port = o.port == 0 ? server.bind_to_any_port(o.host) : o.port;
  if (port < 0 || (o.port != 0 && !server.bind_to_port(o.host, o.port)))
    throw Error("cannot listen on " + o.host + ":" + std::to_string(o.port) +
                " (address in use, or not this machine's?)");
  raise_listen_backlog(port);
  std::cerr << "musiq: listening on http://" << o.host << ":" << port << std::endl;
  service.read_weights();
  if (o.api_key.empty() && o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
    std::cerr << "musiq: note: " << o.host
              << " may be reachable from other machines, and no --api-key is set" << std::endl;
  std::atomic<bool> listener_done{false};
  std::thread listener([&] {
    server.listen_after_bind();
    listener_done = true;
  });
  // stop() acts only on a running server: wait for the listener to start (or to have ended).
  auto stop_server = [&] {
    while (!server.is_running() && !listener_done)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    server.stop();
  };

  std::atomic<bool> ending{false}, signalled{false};
  std::thread watcher([&] {
    for (int received = 0;;) {
      if (sigwait(&signals, &received) != 0) continue;
      if (ending) return;  // woken by the end of run_serve
      signalled = true;
      std::cerr << "musiq: stopping: no new connections; finishing the requests in flight"
                << std::endl;
      service.stopping();
      stop_server();
      return;
    }
  });
  auto end_watcher = [&] {
    ending = true;
    if (!signalled) pthread_kill(watcher.native_handle(), SIGTERM);
    watcher.join();
  };
  try {
    service.load();
  } catch (...) {
    stop_server();
    listener.join();
    end_watcher();
    throw;
  }
  const ModelInfo& model = service.pipeline().model();
  std::cerr << "musiq: ready: " << service.label() << " (" << model.weights_path << ") on "
            << service.pipeline().device().name
            << (model.random_weights ? "; random test weights: scores are not meaningful" : "")
            << std::endl;
  listener.join();  // returns once stop() ran and every connection is closed
  service.finish();
  end_watcher();
  std::cerr << "musiq: stopped" << std::endl;
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "Score images sent over HTTP (POST /v1/score)");
  cmd->add_option("--model", o->model, "Official model: " + alternatives(kModelNames))
      ->check(CLI::IsMember(kModelNames))
      ->capture_default_str();
  cmd->add_option("--weights", o->weights,
                  "Weights file (HDF5); default $MUSIQ_WEIGHTS_DIR/<model>.h5, then the cache");
  cmd->add_option("--device", o->device, alternatives(kDeviceNames))
      ->check(CLI::IsMember(kDeviceNames))
      ->capture_default_str();
  add_precision_option(*cmd, o->precision);
  cmd->add_option("--host", o->host,
                  "Address to listen on (loopback by default; anything else wants --api-key "
                  "and TLS from a reverse proxy)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "TCP port (0: any free port, printed on stderr)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--max-wait-ms", o->max_wait_ms,
                  "How long a request may wait for others to share its forward pass (0: none)")
      ->check(CLI::Range(0, 10000))
      ->capture_default_str();
  cmd->add_option("--max-batch", o->max_batch, "Images in one forward pass at most")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--batch-rows", o->batch_rows,
                  "Rows (tokens + CLS) in one forward pass at most; a larger image runs alone")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_option("--max-pixels", o->max_pixels, "Refuse larger images (checked before decoding)")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_option("--max-tokens", o->max_tokens,
                  "Refuse images whose sequence would be longer (from the header)")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", o->max_body_bytes,
                  "Refuse larger request bodies (413, from Content-Length before reading)")
      ->check(positive_count)
      ->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections,
                  "Connections served at once; more get 503 with Retry-After")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--read-timeout", o->read_timeout_s,
                  "Seconds a client may stay silent while sending, or idle between requests")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Images decoded at once")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key,
                  "Require this key (Authorization: Bearer KEY, or X-API-Key) on every route "
                  "but /health; default $MUSIQ_API_KEY, which keeps it out of `ps`");
  return [o] { return run_serve(*o); };
}

}  // namespace musiq::cli

