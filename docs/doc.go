// Package docs holds pecet's operator and API documentation (operations.md,
// api.md, hsm.md) and the tests that keep it true to the code: every metric
// the registry exposes has a row in operations.md, every RPC of every
// pecet.v1 service has a grpcurl example in api.md, and every example's
// JSON decodes into the RPC's request message. It has no code.
package docs
