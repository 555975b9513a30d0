package xds

import "time"

// backoff is the delay before retry number attempt (1 after the first
// failure): lo doubled per attempt and capped at hi, then lowered by a
// random share of up to half (r in [0, 1) picks it) so that retries do not
// synchronize, and never below lo.
func backoff(attempt int, lo, hi time.Duration, r float64) time.Duration {
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	d -= time.Duration(r * float64(d/2))
	return max(d, lo)
}
