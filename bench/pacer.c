/* Steady-rate sender: N copies of one frame on DEV at RATE pps, in bursts of at most
 * BURST frames (sendmmsg on AF_PACKET), each burst due at an absolute time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <errno.h>

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: pacer DEV HEXFRAME COUNT RATE BURST\n");
		return 2;
	}
	const char *hex = argv[2];
	size_t len = strlen(hex) / 2;
	unsigned char frame[2048];
	for (size_t i = 0; i < len && i < sizeof(frame); i++)
		sscanf(hex + 2 * i, "%2hhx", &frame[i]);
	long count = atol(argv[3]), rate = atol(argv[4]), burst = atol(argv[5]);
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) { perror("socket"); return 1; }
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_ifindex = if_nametoindex(argv[1]),
				   .sll_halen = ETH_ALEN };
	if (!sll.sll_ifindex) { perror("if_nametoindex"); return 1; }
	int one = 1;
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	struct mmsghdr msgs[1024];
	struct iovec iov = { .iov_base = frame, .iov_len = len };
	if (burst > 1024) burst = 1024;
	for (int i = 0; i < burst; i++) {
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &sll;
		msgs[i].msg_hdr.msg_namelen = sizeof(sll);
	}
	struct timespec t0, due, end;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long sent = 0;
	while (sent < count) {
		/* the burst is due when `sent` packets should have gone out */
		long long ns = (long long)sent * 1000000000LL / rate;
		due.tv_sec = t0.tv_sec + (t0.tv_nsec + ns) / 1000000000LL;
		due.tv_nsec = (t0.tv_nsec + ns) % 1000000000LL;
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL);
		int n = count - sent < burst ? count - sent : burst;
		int r = sendmmsg(fd, msgs, n, 0);
		if (r < 0) {
			if (errno == ENOBUFS || errno == EAGAIN)
				continue;
			perror("sendmmsg");
			return 1;
		}
		sent += r;
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	double s = (end.tv_sec - t0.tv_sec) + (end.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%ld packets in %.3f s: %.0f pps\n", sent, s, sent / s);
	return 0;
}
