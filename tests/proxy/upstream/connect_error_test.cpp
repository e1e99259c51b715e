#include "proxy/upstream/connect_error.hpp"

#include <gtest/gtest.h>

#include <boost/asio/error.hpp>
#include <boost/beast/http/error.hpp>
#include <cerrno>

namespace gp::proxy {
namespace {

namespace sys = boost::system;

// Out of descriptors or socket buffers: the proxy's own trouble, whichever category the
// errno arrives in (Asio reports system_category, std::errc maps to generic_category).
TEST(IsLocalOverload, DescriptorAndBufferExhaustion) {
  for (int e : {EMFILE, ENFILE, ENOBUFS}) {
    EXPECT_TRUE(is_local_overload(sys::error_code(e, sys::system_category()))) << e;
    EXPECT_TRUE(is_local_overload(sys::error_code(e, sys::generic_category()))) << e;
  }
  EXPECT_TRUE(is_local_overload(sys::errc::make_error_code(sys::errc::too_many_files_open)));
  EXPECT_TRUE(is_local_overload(boost::asio::error::no_buffer_space));
}

// The endpoint's fault (or nobody's): these may eject it.
TEST(IsLocalOverload, EndpointFailuresAreNot) {
  EXPECT_FALSE(is_local_overload(sys::error_code(ECONNREFUSED, sys::system_category())));
  EXPECT_FALSE(is_local_overload(boost::asio::error::connection_refused));
  EXPECT_FALSE(is_local_overload(sys::error_code(ETIMEDOUT, sys::system_category())));
  EXPECT_FALSE(is_local_overload(boost::asio::error::timed_out));
  EXPECT_FALSE(is_local_overload(boost::asio::error::operation_aborted));
  EXPECT_FALSE(is_local_overload(boost::beast::http::error::end_of_stream));
  EXPECT_FALSE(is_local_overload(sys::error_code{}));
}

// Only the errno categories count: another category's value that happens to equal EMFILE
// means something else.
TEST(IsLocalOverload, SameValueInAnotherCategoryIsNot) {
  const auto& http_category = make_error_code(boost::beast::http::error::end_of_stream).category();
  EXPECT_FALSE(is_local_overload(sys::error_code(EMFILE, http_category)));
  EXPECT_FALSE(is_local_overload(sys::error_code(ENFILE, boost::asio::error::get_misc_category())));
}

}  // namespace
}  // namespace gp::proxy
