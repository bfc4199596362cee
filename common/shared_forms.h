// SharedForms: the other encodings of one message (its parsed protobuf, the
// WebSocket frames of each browser protocol, ...), each made once by the
// first connection that writes it and shared by every other. An update
// fanned out to 10,000 browsers is parsed once and encoded once per
// protocol in use, not once per connection.
//
// A form lives in a numbered slot; what a slot holds is the business of
// whoever numbers it (adapters/gateway/link_message.h). Thread-safe and
// lock-free, since the connections of one message run on every I/O
// thread: two threads that find a slot empty at once both make the form,
// the first to install it wins and the other's is dropped.
#ifndef ENTITYSYNC_COMMON_SHARED_FORMS_H_
#define ENTITYSYNC_COMMON_SHARED_FORMS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <type_traits>
#include <utility>

namespace entitysync {

class SharedForms {
 public:
  // What a slot holds.
  class Form {
   public:
    virtual ~Form() = default;
  };

  static constexpr size_t kSlots = 6;

  SharedForms() = default;
  SharedForms(const SharedForms&) = delete;
  SharedForms& operator=(const SharedForms&) = delete;
  ~SharedForms() {
    for (std::atomic<Form*>& slot : slots_) delete slot.load();
  }

  // The form in `slot`, made with `make()` (a std::unique_ptr<T>, never
  // null) if the slot is still empty. Every caller of one slot must ask for
  // the same T.
  template <typename T, typename Make>
  const T& Get(size_t slot, Make&& make) {
    static_assert(std::is_base_of_v<Form, T>, "a form derives from Form");
    std::atomic<Form*>& cell = slots_[slot];
    Form* form = cell.load(std::memory_order_acquire);
    if (form == nullptr) {
      std::unique_ptr<Form> made = std::forward<Make>(make)();
      Form* expected = nullptr;
      if (cell.compare_exchange_strong(expected, made.get(),
                                       std::memory_order_acq_rel)) {
        form = made.release();
      } else {
        form = expected;  // another thread's came first
      }
    }
    return static_cast<const T&>(*form);
  }

  // Installs `form` in an empty `slot` (the maker of the message, which
  // has a form at hand). False, and `form` dropped, if the slot was taken.
  bool Put(size_t slot, std::unique_ptr<Form> form) {
    Form* expected = nullptr;
    if (!slots_[slot].compare_exchange_strong(expected, form.get(),
                                              std::memory_order_acq_rel)) {
      return false;
    }
    form.release();
    return true;
  }

 private:
  std::array<std::atomic<Form*>, kSlots> slots_{};
};

}  // namespace entitysync

#endif  // ENTITYSYNC_COMMON_SHARED_FORMS_H_
