// musiq: score image quality with Google's MUSIQ model.
#include <iostream>
#include <map>

#include "engine/musiq.h"
#include "tools/musiq/commands.h"

#ifndef MUSIQ_VERSION
#define MUSIQ_VERSION "unknown"
#endif

int main(int argc, char** argv) {
  CLI::App app{"musiq: image quality scores with Google's MUSIQ transformer"};
  app.set_version_flag("--version", std::string("musiq ") + MUSIQ_VERSION);
  app.require_subcommand(1);
  std::map<CLI::App*, musiq::cli::Command> commands;
  for (auto add : {musiq::cli::add_score_command, musiq::cli::add_preprocess_command,
                   musiq::cli::add_bench_command, musiq::cli::add_info_command,
                   musiq::cli::add_serve_command}) {
    const size_t before = app.get_subcommands({}).size();
    musiq::cli::Command run = add(app);
    commands[app.get_subcommands({}).at(before)] = run;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return musiq::cli::kExitUsage;
  }
  try {
    for (auto& [sub, run] : commands)
      if (sub->parsed()) return run();
  } catch (...) {  // a bug too is reported as one line
    std::cerr << "musiq: " << musiq::describe_exception(std::current_exception()).message
              << "\n";
    return musiq::cli::kExitUsage;
  }
  return musiq::cli::kExitUsage;
}
