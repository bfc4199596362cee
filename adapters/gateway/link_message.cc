#include "adapters/gateway/link_message.h"

#include <utility>

namespace entitysync {
namespace gateway {
namespace {

struct FramesForm final : SharedForms::Form {
  std::vector<WsFrame> frames;
};

struct StringForm final : SharedForms::Form {
  std::string data;
};

LinkMessage::Slot FramesSlot(WsMode mode) {
  switch (mode) {
    case WsMode::kLegacy:
      return LinkMessage::kLegacyFrames;
    case WsMode::kEnveloped:
      return LinkMessage::kEnvelopedFrames;
    case WsMode::kBinary:
      break;
  }
  return LinkMessage::kBinaryFrames;
}

}  // namespace

LinkMessage::LinkMessage(v1::SubscribeResponse response)
    : forms_(std::make_shared<SharedForms>()) {
  auto parsed = std::make_unique<ParsedResponse>();
  parsed->response = std::move(response);
  response_ = &parsed->response;
  forms_->Put(kParsed, std::move(parsed));
}

LinkMessage::LinkMessage(std::shared_ptr<SharedForms> forms)
    : forms_(std::move(forms)),
      response_(&forms_
                     ->Get<ParsedResponse>(
                         kParsed,
                         []() -> std::unique_ptr<ParsedResponse> {
                           // The maker put it there; an empty message if not.
                           return std::make_unique<ParsedResponse>();
                         })
                     .response) {}

void LinkMessage::AppendFrames(
    WsMode mode, std::vector<std::shared_ptr<const WsFrame>>* out) const {
  const FramesForm& form = forms_->Get<FramesForm>(FramesSlot(mode), [&] {
    auto made = std::make_unique<FramesForm>();
    if (mode == WsMode::kBinary) {
      made->frames.push_back({response_->SerializeAsString(), true});
    } else {
      made->frames = EncodeResponse(*response_, mode);
    }
    return made;
  });
  for (const WsFrame& frame : form.frames) {
    // Aliasing: shares ownership of the forms, points at the frame.
    out->emplace_back(forms_, &frame);
  }
}

std::shared_ptr<const std::string> LinkMessage::GrpcWebFrame(
    GrpcWebFormat format) const {
  const Slot slot =
      format == GrpcWebFormat::kBinary ? kGrpcWebBinary : kGrpcWebText;
  const StringForm& form = forms_->Get<StringForm>(slot, [&] {
    auto made = std::make_unique<StringForm>();
    made->data = EncodeGrpcWebMessage(response_->SerializeAsString(), format);
    return made;
  });
  return std::shared_ptr<const std::string>(forms_, &form.data);
}

}  // namespace gateway
}  // namespace entitysync
