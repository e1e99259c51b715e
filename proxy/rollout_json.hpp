// JSON form of the rollout controller's status and judgements: the same document serves
// /status and the state file, so what an operator reads is what a restart resumes.
#pragma once

#include <boost/json/object.hpp>

#include "routing/rollout.hpp"

namespace gp::proxy {

// A number as operators read it: integral values as integers ("20", not Boost.JSON's
// "2E1"), NaN and infinities (not measured) as null.
boost::json::value json_number(double v);

boost::json::object to_json(const routing::Judgement& j);
boost::json::object to_json(const routing::RolloutStatus& s);

// Throws std::exception (boost::system::system_error or std::invalid_argument) on a
// document that is not a status.
routing::RolloutStatus status_from_json(const boost::json::object& o);

}  // namespace gp::proxy
