// Namespace aliases for Boost.Beast and Asio, shared by the gateway's
// connection classes.
#ifndef ENTITYSYNC_ADAPTERS_GATEWAY_BEAST_H_
#define ENTITYSYNC_ADAPTERS_GATEWAY_BEAST_H_

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

namespace entitysync {
namespace gateway {

namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace websocket = boost::beast::websocket;
namespace net = boost::asio;
using tcp = boost::asio::ip::tcp;

using HttpRequest = http::request<http::string_body>;

}  // namespace gateway
}  // namespace entitysync

#endif  // ENTITYSYNC_ADAPTERS_GATEWAY_BEAST_H_
