/* tun_backoff.c - reconnect delays; see tun_backoff.h. */
#include "tunnel/tun_backoff.h"

uint64_t tun_backoff_max_ms(uint32_t failures)
{
	if (failures >= 5) /* 1 s << 5 = 32 s: past the cap */
		return TUN_BACKOFF_CAP_MS;
	uint64_t m = (uint64_t)TUN_BACKOFF_BASE_MS << failures;
	return m < TUN_BACKOFF_CAP_MS ? m : TUN_BACKOFF_CAP_MS;
}

uint64_t tun_backoff_lost(tun_backoff *b, uint64_t up_ms, uint64_t rnd)
{
	if (up_ms >= TUN_BACKOFF_RESET_MS)
		b->failures = 0;
	uint64_t d = rnd % (tun_backoff_max_ms(b->failures) + 1);
	if (b->failures < UINT32_MAX)
		b->failures++;
	return d;
}
