// The README's exit code table must list exactly the codes the program uses.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "cspine/exit_codes.h"

TEST(ExitCodes, ReadmeTableMatchesCode) {
  std::ifstream in(std::string(CSPINE_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(in) << "README.md not found";
  std::string line;
  bool in_table = false;
  std::map<int, std::string> documented;
  const std::regex row(R"(^\|\s*(\d+)\s*\|\s*([a-z-]+)\s*\|.*\|\s*$)");
  while (std::getline(in, line)) {
    if (line.find("<!-- exit-codes:begin -->") != std::string::npos) in_table = true;
    if (line.find("<!-- exit-codes:end -->") != std::string::npos) in_table = false;
    std::smatch m;
    if (in_table && std::regex_match(line, m, row)) documented[std::stoi(m[1])] = m[2];
  }
  ASSERT_FALSE(documented.empty()) << "no exit-code table between the markers in README.md";
  std::map<int, std::string> actual;
  for (const auto& c : cspine::kExitCodes) actual[cspine::to_int(c.code)] = std::string(c.name);
  EXPECT_EQ(documented, actual);
}

TEST(ExitCodes, DistinctAndOrdered) {
  int last = -1;
  for (const auto& c : cspine::kExitCodes) {
    EXPECT_GT(cspine::to_int(c.code), last);
    last = cspine::to_int(c.code);
    EXPECT_FALSE(c.meaning.empty());
  }
}
