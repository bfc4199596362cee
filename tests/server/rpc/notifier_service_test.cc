#include "server/rpc/notifier_service.h"

#include <string>

#include "gtest/gtest.h"

namespace entitysync {
namespace {

v1::Change* AddChange(v1::NotifyRequest* request, const std::string& entity,
                      const std::string& id) {
  v1::Change* change = request->add_changes();
  change->mutable_key()->set_entity(entity);
  change->mutable_key()->set_id(id);
  return change;
}

EntityTable ItemsTable() {
  EntityTable table;
  v1::EntityConfig config;
  config.set_name("items");
  table.Add(config, nullptr);
  return table;
}

TEST(ValidateNotifyTest, NamesTheFirstBadEntry) {
  Limits limits;
  EntityTable table = ItemsTable();
  v1::NotifyRequest request;
  AddChange(&request, "items", "1");
  AddChange(&request, "items", "");
  absl::Status s = ValidateNotify(request, limits, table);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("changes[1]"), std::string::npos) << s;
  EXPECT_NE(s.message().find("id is empty"), std::string::npos) << s;
}

TEST(ValidateNotifyTest, RejectsUnknownEntityOversizedRowsAndEmptyBatch) {
  Limits limits;
  limits.max_row_bytes = 10;
  EntityTable table = ItemsTable();
  {
    v1::NotifyRequest request;
    EXPECT_NE(ValidateNotify(request, limits, table).message().find("empty"),
              std::string::npos);
  }
  {
    v1::NotifyRequest request;
    AddChange(&request, "users", "1");
    EXPECT_NE(ValidateNotify(request, limits, table)
                  .message()
                  .find("unknown entity 'users'"),
              std::string::npos);
  }
  {
    v1::NotifyRequest request;
    AddChange(&request, "items", "1")
        ->mutable_rows()
        ->add_rows()
        ->set_data(std::string(11, 'x'));
    EXPECT_NE(ValidateNotify(request, limits, table).message().find("11 bytes"),
              std::string::npos);
  }
  {
    v1::NotifyRequest request;
    for (size_t i = 0; i <= limits.max_notify_changes; ++i)
      AddChange(&request, "items", "1");
    EXPECT_NE(ValidateNotify(request, limits, table)
                  .message()
                  .find("the limit is 1000"),
              std::string::npos);
  }
}

TEST(ValidateNotifyTest, OpenModeNeedsInlineRows) {
  Limits limits;
  EntityTable open;
  v1::NotifyRequest request;
  AddChange(&request, "anything", "1");
  EXPECT_NE(ValidateNotify(request, limits, open).message().find("open mode"),
            std::string::npos);
  request.mutable_changes(0)->mutable_rows()->add_rows()->set_data("x");
  EXPECT_TRUE(ValidateNotify(request, limits, open).ok());
}

}  // namespace
}  // namespace entitysync
