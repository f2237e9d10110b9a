// Where the weights of a named model are looked for, and how to get them when absent.
#pragma once
#include <string>
#include <vector>

namespace musiq {

// The official models, as --model, the weights cache and a weights file's variant name them.
inline const std::vector<std::string> kModelNames = {"spaq", "koniq", "paq2piq", "ava"};

// $XDG_CACHE_HOME/musiq, else ~/.cache/musiq (~: $HOME, else the user's home in the
// password database). Throws musiq::Error when there is no home at all.
std::string weights_cache_dir();

// --weights if given, else $MUSIQ_WEIGHTS_DIR/<model>.h5, else <cache>/<model>.h5.
// Throws musiq::Error with the exact commands to fetch and export the checkpoint.
std::string locate_weights(const std::string& model, const std::string& explicit_path);

}  // namespace musiq
