// A minimal parallel-for over an index range: each worker pulls the next index from a shared counter,
// so memory stays bounded by what one item needs per worker. The first exception is rethrown.
#pragma once
#include <cstddef>
#include <functional>

namespace cspine {

int resolve_threads(int requested);
void parallel_for(std::size_t count, int threads, const std::function<void(std::size_t)>& body);

}  // namespace cspine
