#include "pipeline/plan.h"

#include <set>

#include "cspine/runtime.h"

namespace cspine {

Plan make_plan(const std::vector<std::string>& found, const std::optional<TestRows>& test) {
  Plan p;
  if (!test) {
    p.score = found;
    p.order = found;
    return p;
  }
  const std::set<std::string> have(found.begin(), found.end());
  for (const auto& uid : test->studies) (have.count(uid) ? p.score : p.missing).push_back(uid);
  p.order = test->studies;
  const std::set<std::string> wanted(test->studies.begin(), test->studies.end());
  for (const auto& uid : found)
    if (!wanted.count(uid)) log_info("study " + uid + " is not in the test CSV: not scored");
  return p;
}

Plan filter_plan(const Plan& plan, const std::function<bool(std::size_t, const std::string&)>& keep) {
  std::set<std::string> kept;
  Plan out;
  for (std::size_t i = 0; i < plan.order.size(); ++i)
    if (keep(i, plan.order[i])) {
      kept.insert(plan.order[i]);
      out.order.push_back(plan.order[i]);
    }
  for (const auto& uid : plan.score)
    if (kept.count(uid)) out.score.push_back(uid);
  for (const auto& uid : plan.missing)
    if (kept.count(uid)) out.missing.push_back(uid);
  return out;
}

}  // namespace cspine
