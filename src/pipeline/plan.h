// The batch's plan: which studies this run scores, in which order its outputs list them, and which studies
// test.csv names that the input does not hold. A plain value: a filter (a shard of a cluster job, say) shrinks
// it before the batch runs, and nothing else in the runner changes.
#pragma once
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "output/predict_outputs.h"

namespace cspine {

struct Plan {
  std::vector<std::string> score;    // studies to score, in output order
  std::vector<std::string> missing;  // named by test.csv, absent from the input (their rows get the prior)
  std::vector<std::string> order;    // every study of the outputs, in their order (test.csv's, or UID order)
};

// `found`: the input's studies (sorted). Without `test`, every study in UID order; with it, exactly its studies
// in its order (the others are logged and not scored).
Plan make_plan(const std::vector<std::string>& found, const std::optional<TestRows>& test);

// The plan restricted to the studies `keep` accepts; `keep` sees each study's position in `order` and its UID.
Plan filter_plan(const Plan& plan, const std::function<bool(std::size_t position, const std::string& uid)>& keep);

}  // namespace cspine
