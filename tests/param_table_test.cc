// The parameter table (weights/param_table.h): every field is made of exactly its sources'
// values, the official config has the datasets weights/FORMAT.md counts, and
// tools/musiq_params.py, which the Python tools use without a build, spells the same table
// and the same model names.
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "base/tensor.h"
#include "tests/test_util.h"
#include "weights/param_table.h"
#include "weights/weights_locator.h"

namespace musiq {
namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

Shapes shapes_of(const std::vector<ParamSpec>& params) {
  Shapes shapes;
  for (const ParamSpec& p : params) EXPECT_TRUE(shapes.emplace(p.name, p.shape).second) << p.name;
  return shapes;
}

TEST(ParamTable, EachFieldHoldsItsSourcesValues) {
  for (const ParamField& field : param_fields(ModelConfig{})) {
    ASSERT_FALSE(field.sources.empty());
    int64_t values = 0;
    for (const ParamSpec& source : field.sources) values += element_count(source.shape);
    EXPECT_EQ(values, element_count(field.shape)) << field.sources[0].name;
  }
}

TEST(ParamTable, OfficialConfigAsFormatMdCountsIt) {
  const std::vector<ParamSpec> params = expected_params(ModelConfig{});
  int64_t values = 0;
  for (const ParamSpec& p : params) values += element_count(p.shape);
  EXPECT_EQ(params.size(), 248u);
  EXPECT_EQ(values, 27125825);
  EXPECT_EQ(shapes_of(params).size(), params.size());
}

TEST(ParamTable, PythonToolsAgree) {
  const std::string out = test::temp_path("musiq_params_tables.json");
  const std::string cmd = std::string(MUSIQ_PYTHON) + " " +
                          test::source_path("tests/python/param_table_json.py") + " > " + out;
  ASSERT_EQ(test::run_command(cmd), 0) << cmd;
  const nlohmann::json python = nlohmann::json::parse(std::ifstream(out));

  EXPECT_EQ(python.at("models").get<std::vector<std::string>>(), kModelNames);
  ASSERT_GE(python.at("tables").size(), 2u);
  for (const nlohmann::json& table : python.at("tables")) {
    const ModelConfig config = parse_model_config(table.at("config").dump(), "musiq_params.py");
    Shapes want;
    for (const nlohmann::json& p : table.at("params"))
      want.emplace(p.at(0).get<std::string>(), p.at(1).get<std::vector<int64_t>>());
    EXPECT_EQ(shapes_of(expected_params(config)), want) << table.at("config").dump();
  }
}

}  // namespace
}  // namespace musiq
