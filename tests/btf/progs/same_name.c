/* Two compilation units that each define their own struct console, linked into one
 * object (bpftool gen object), as vmlinux has two struct console and four struct
 * workspace. Built twice: -DUNIT=1 and -DUNIT=2.
 */
typedef unsigned int __u32;
typedef unsigned long long __u64;

#if UNIT == 1
struct console {
	__u32 flags;
	__u64 seq;
	char name[16];
};

struct console console_one;

char _license[] __attribute__((section("license"), used)) = "GPL";
#else
struct console {
	__u64 index;
};

struct console console_two;
#endif
