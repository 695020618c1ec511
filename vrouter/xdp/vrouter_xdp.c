// SPDX-License-Identifier: (MIT OR GPL-2.0)
/*
 * vrouter_xdp.c: the vRouter's XDP steering program.
 *
 * Self-contained on purpose (no system or libbpf headers): build.rs compiles it with
 * `clang -O2 -g -target bpf -c` and nothing else. The `-g` matters: libbpf needs the BTF it
 * produces to understand the BTF-style map definitions in SEC(".maps").
 *
 * Decides, per received frame, between the kernel (XDP_PASS) and the vRouter's AF_XDP socket
 * bound to the receiving queue (bpf_redirect_map on `xsks`). When no socket is registered for
 * the queue, bpf_redirect_map returns its fallback action XDP_PASS, so an idle or dead vRouter
 * never black-holes traffic.
 *
 * Maps (filled by vrouter/src/xdp.rs):
 *   xsks         XSKMAP, rx queue index -> AF_XDP socket.
 *   prefixes_v4  LPM trie, IPv4 prefix -> class.
 *   prefixes_v6  LPM trie, IPv6 prefix -> class.
 *   settings     ARRAY[4]: [0] the role of the interface; [1] on an endpoint, non-zero once the
 *                pod's answers (ARP replies, neighbour advertisements) go to the kernel;
 *                [2], [3] on an uplink: the NAT outgoing port range (low, high; 0 = no NAT).
 * Classes: 1 = OURS (pool / pod addresses the vRouter forwards), 2 = LOCAL (the node's own).
 * Roles:
 *   0 = uplink: OURS destinations, and tunnel traffic (IPIP, IPv6-in-IP, VXLAN UDP 4789) for
 *       LOCAL destinations, go to the vRouter; so does, with NAT on, what returns to a NAT port:
 *       TCP / UDP to a LOCAL address and a port of the range, ICMP / ICMPv6 echo replies with an
 *       identifier in it, and ICMP errors quoting a packet from such a port (or echo request).
 *       The rest (ARP, the host's SSH/BGP, its own connections: the kernel never takes a port of
 *       the range, vrouterd reserves it) goes to the kernel.
 *   1 = endpoint (a pod's host-side veth): LOCAL destinations go to the kernel, and once
 *       settings[1] is set the pod's ARP replies and neighbour advertisements too (they answer
 *       the kernel's own requests: the vRouter asks only while it does not know the pod's MAC,
 *       and sets settings[1] when it does); everything else (the rest of ARP and IPv6 ND
 *       included) to the vRouter.
 */

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
/* BTF-style map definition helpers, as in libbpf's bpf_helpers.h. */
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define bpf_htons(x) ((__be16)__builtin_bswap16(x))
#else
#define bpf_htons(x) ((__be16)(x))
#endif

/* uapi/linux/bpf.h */
enum {
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_XSKMAP = 17,
};
#define BPF_F_NO_PREALLOC (1U << 0)

enum xdp_action {
	XDP_ABORTED = 0,
	XDP_DROP,
	XDP_PASS,
	XDP_TX,
	XDP_REDIRECT,
};

struct xdp_md {
	__u32 data;
	__u32 data_end;
	__u32 data_meta;
	__u32 ingress_ifindex;
	__u32 rx_queue_index;
	__u32 egress_ifindex;
};

/* Helpers, by their stable ids in uapi/linux/bpf.h. */
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_redirect_map)(void *map, __u64 key, __u64 flags) = (void *)51;

/* Wire headers (only the fields we read are named; sizes are what matter). */
struct ethhdr {
	__u8 h_dest[6];
	__u8 h_source[6];
	__be16 h_proto;
} __attribute__((packed));

struct iphdr {
	__u8 ihl_version; /* low nibble: IHL on little- and big-endian alike (first byte) */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct ipv6hdr {
	__be32 vtc_flow;
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* ARP for Ethernet and IPv4, up to the operation. */
struct arphdr {
	__be16 ar_hrd;
	__be16 ar_pro;
	__u8 ar_hln;
	__u8 ar_pln;
	__be16 ar_op;
};

struct icmphdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id; /* echo; unused in errors */
	__be16 seq;
};

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
};

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_ARP 0x0806
#define ARPOP_REPLY 2
#define IPPROTO_ICMP 1
#define IPPROTO_TCP 6
#define IPPROTO_ICMPV6 58
#define ND_NEIGHBOR_ADVERT 136
#define IPPROTO_IPIP 4
#define IPPROTO_UDP 17
#define IPPROTO_IPV6 41
#define VXLAN_PORT 4789
#define IP_OFFSET_MASK 0x1FFF

#define CLASS_OURS 1
#define CLASS_LOCAL 2

#define ROLE_UPLINK 0
#define ROLE_ENDPOINT 1

#define SETTING_ROLE 0
#define SETTING_ANSWERS_TO_KERNEL 1
#define SETTING_NAT_LOW 2
#define SETTING_NAT_HIGH 3

struct lpm_v4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct lpm_v6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct lpm_v4_key);
	__type(value, __u32);
} prefixes_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 4096);
	__type(key, struct lpm_v6_key);
	__type(value, __u32);
} prefixes_v6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u32);
} settings SEC(".maps");

static __always_inline __u32 setting(__u32 key)
{
	__u32 *value = bpf_map_lookup_elem(&settings, &key);

	return value ? *value : 0;
}

/* 0 = no match. */
static __always_inline __u32 class_v4(const __u8 *daddr)
{
	struct lpm_v4_key key;
	__u32 *class;

	key.prefixlen = 32;
	__builtin_memcpy(key.addr, daddr, sizeof(key.addr));
	class = bpf_map_lookup_elem(&prefixes_v4, &key);
	return class ? *class : 0;
}

static __always_inline __u32 class_v6(const __u8 *daddr)
{
	struct lpm_v6_key key;
	__u32 *class;

	key.prefixlen = 128;
	__builtin_memcpy(key.addr, daddr, sizeof(key.addr));
	class = bpf_map_lookup_elem(&prefixes_v6, &key);
	return class ? *class : 0;
}

/* Is the L4 header at `l4` a UDP header for VXLAN? */
static __always_inline int is_vxlan(void *l4, void *data_end)
{
	struct udphdr *udp = l4;

	if ((void *)(udp + 1) > data_end)
		return 0;
	return udp->dest == bpf_htons(VXLAN_PORT);
}

static __always_inline int nat_port(__be16 port)
{
	__u32 p = bpf_htons(port); /* a swap either way */
	__u32 low = setting(SETTING_NAT_LOW);

	return low && p >= low && p <= setting(SETTING_NAT_HIGH);
}

/* TCP / UDP to a NAT port, or an echo reply with a NAT identifier. `v6`: ICMPv6 numbering. */
static __always_inline int nat_reply(__u8 proto, void *l4, void *data_end, int v6)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		struct udphdr *ports = l4; /* TCP's ports sit where UDP's do */

		if ((void *)(ports + 1) > data_end)
			return 0;
		return nat_port(ports->dest);
	}
	if (proto == (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end)
			return 0;
		return icmp->type == (v6 ? 129 : 0) && nat_port(icmp->id);
	}
	return 0;
}

/* The packet an ICMP error quotes, at `q`: from a NAT port (or an echo request with a NAT
 * identifier), i.e. something we sent. `l4` is where its transport header starts. */
static __always_inline int nat_quote(__u8 proto, void *l4, void *data_end, int v6)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
		struct udphdr *ports = l4;

		if ((void *)ports + 4 > data_end)
			return 0;
		return nat_port(ports->source);
	}
	if (proto == (v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP)) {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end)
			return 0;
		return icmp->type == (v6 ? 128 : 8) && nat_port(icmp->id);
	}
	return 0;
}

static __always_inline int nat_v4(struct iphdr *ip, __u32 ihl, void *data_end)
{
	struct icmphdr *icmp;
	struct iphdr *q;
	__u32 qihl;

	if (!setting(SETTING_NAT_LOW) || (ip->frag_off & bpf_htons(IP_OFFSET_MASK)))
		return 0;
	if (ip->protocol != IPPROTO_ICMP)
		return nat_reply(ip->protocol, (void *)ip + ihl, data_end, 0);
	icmp = (void *)ip + ihl;
	if ((void *)(icmp + 1) > data_end)
		return 0;
	if (icmp->type == 0)
		return nat_reply(IPPROTO_ICMP, icmp, data_end, 0);
	/* Errors: unreachable, time exceeded, parameter problem. */
	if (icmp->type != 3 && icmp->type != 11 && icmp->type != 12)
		return 0;
	q = (void *)(icmp + 1);
	if ((void *)(q + 1) > data_end)
		return 0;
	qihl = (q->ihl_version & 0x0F) * 4;
	if (qihl < sizeof(*q) || qihl > 60)
		return 0;
	return nat_quote(q->protocol, (void *)q + qihl, data_end, 0);
}

static __always_inline int nat_v6(struct ipv6hdr *ip6, void *data_end)
{
	struct icmphdr *icmp;
	struct ipv6hdr *q;

	if (!setting(SETTING_NAT_LOW))
		return 0;
	if (ip6->nexthdr != IPPROTO_ICMPV6)
		return nat_reply(ip6->nexthdr, ip6 + 1, data_end, 1);
	icmp = (void *)(ip6 + 1);
	if ((void *)(icmp + 1) > data_end)
		return 0;
	if (icmp->type == 129)
		return nat_reply(IPPROTO_ICMPV6, icmp, data_end, 1);
	/* Errors: unreachable, packet too big, time exceeded, parameter problem. */
	if (icmp->type < 1 || icmp->type > 4)
		return 0;
	q = (void *)(icmp + 1);
	if ((void *)(q + 1) > data_end)
		return 0;
	return nat_quote(q->nexthdr, q + 1, data_end, 1);
}

SEC("xdp")
int vrouter_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 role = setting(SETTING_ROLE);
	__u32 class;

	if ((void *)(eth + 1) > data_end)
		goto malformed;

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		__u32 ihl;

		if ((void *)(ip + 1) > data_end)
			goto malformed;
		ihl = (ip->ihl_version & 0x0F) * 4;
		if (ihl < sizeof(*ip))
			goto malformed;
		class = class_v4(ip->daddr);

		if (role == ROLE_ENDPOINT)
			return class == CLASS_LOCAL ? XDP_PASS : bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

		if (class == CLASS_OURS)
			goto redirect;
		if (class != CLASS_LOCAL)
			return XDP_PASS;
		if (ip->protocol == IPPROTO_IPIP || ip->protocol == IPPROTO_IPV6)
			goto redirect;
		/* Only the first fragment carries the UDP header. */
		if (ip->protocol == IPPROTO_UDP && !(ip->frag_off & bpf_htons(IP_OFFSET_MASK)) &&
		    is_vxlan((void *)ip + ihl, data_end))
			goto redirect;
		if (nat_v4(ip, ihl, data_end))
			goto redirect;
		return XDP_PASS;
	}

	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			goto malformed;
		class = class_v6(ip6->daddr);

		if (role == ROLE_ENDPOINT && ip6->nexthdr == IPPROTO_ICMPV6) {
			__u8 *type = (void *)(ip6 + 1);

			if ((void *)(type + 1) > data_end)
				goto malformed;
			if (*type == ND_NEIGHBOR_ADVERT && setting(SETTING_ANSWERS_TO_KERNEL))
				return XDP_PASS;
		}
		if (role == ROLE_ENDPOINT)
			return class == CLASS_LOCAL ? XDP_PASS : bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);

		if (class == CLASS_OURS)
			goto redirect;
		if (class != CLASS_LOCAL)
			return XDP_PASS;
		if (ip6->nexthdr == IPPROTO_IPIP || ip6->nexthdr == IPPROTO_IPV6)
			goto redirect;
		if (ip6->nexthdr == IPPROTO_UDP && is_vxlan(ip6 + 1, data_end))
			goto redirect;
		if (nat_v6(ip6, data_end))
			goto redirect;
		return XDP_PASS;
	}

	if (role == ROLE_ENDPOINT && eth->h_proto == bpf_htons(ETH_P_ARP)) {
		struct arphdr *arp = (void *)(eth + 1);

		if ((void *)(arp + 1) > data_end)
			goto malformed;
		if (arp->ar_op == bpf_htons(ARPOP_REPLY) && setting(SETTING_ANSWERS_TO_KERNEL))
			return XDP_PASS;
	}

	/* ARP and everything else: the pod's side talks only to the vRouter; the uplink's belongs to
	 * the host. */
	if (role == ROLE_ENDPOINT)
		goto redirect;
	return XDP_PASS;

malformed:
	/* Truncated or bogus headers: the kernel counts and drops them on the uplink; on an endpoint
	 * the vRouter does (nothing from a pod reaches the host unfiltered). */
	if (role == ROLE_ENDPOINT)
		goto redirect;
	return XDP_PASS;

redirect:
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
