/* A trivial XDP program that carries a hints struct in its BTF (a struct whose last
 * member is btf_id), for the monitor and event tests: attach it with
 * `ip link set DEV xdp obj hints_pass.o sec xdp`. No kernel headers needed. */
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

struct xdp_hints_monitor {
	__u64 rx_timestamp;
	__u32 rx_hash;
	__u32 btf_id;
};

struct xdp_hints_monitor monitor_hints;

SEC("xdp")
int hints_pass(struct xdp_md *ctx)
{
	return 2; /* XDP_PASS */
}

char _license[] SEC("license") = "GPL";
