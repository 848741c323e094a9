/* Scheduler benchmark: placements per second at 10,000 nodes (pure function, no I/O), against
 * a baseline that only scans the same node array once per placement (the minimum any
 * placement over all nodes costs). usage: bench_sched [--nodes N] [--placements N] */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"
#include "util.h"

int main(int argc, char **argv)
{
    int n = 10000, placements = 20000;
    static const struct option opts[] = {{"nodes", required_argument, NULL, 'n'},
                                         {"placements", required_argument, NULL, 'p'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (o == 'n')
            n = atoi(optarg);
        else if (o == 'p')
            placements = atoi(optarg);
        else
            return 2;
    }
    struct ctl_sched_node *nodes = calloc((size_t)n, sizeof(*nodes));
    char(*ids)[40] = calloc((size_t)n, 40);
    static const char *metros[] = {"fra0", "dal0", "sin0", "was1"};
    for (int i = 0; i < n; i++) {
        nubo_uuid_new(ids[i]);
        nodes[i] = (struct ctl_sched_node){
            ids[i], metros[i % 4], i % 50 != 0, 65536 - (i * 37) % 4096, 64, 253};
    }
    /* baseline: one pass over the nodes per placement, picking the most free memory */
    volatile size_t sink = 0;
    int64_t t0 = nubo_mono_us();
    for (int k = 0; k < placements; k++) {
        size_t best = 0;
        for (int i = 1; i < n; i++)
            if (nodes[i].free_memory_mb > nodes[best].free_memory_mb)
                best = (size_t)i;
        sink += best;
    }
    double base_s = (nubo_mono_us() - t0) / 1e6;
    /* the scheduler: single placements in one metro, updating the nodes as the controller does */
    size_t out[254];
    t0 = nubo_mono_us();
    int placed = 0;
    for (int k = 0; k < placements; k++) {
        struct ctl_sched_req req = {metros[k % 4], 128, 1, 1};
        if (ctl_schedule(nodes, (size_t)n, &req, out, NULL) == 0) {
            nodes[out[0]].free_memory_mb -= 128;
            nodes[out[0]].free_vcpus -= 1;
            placed++;
        }
    }
    double single_s = (nubo_mono_us() - t0) / 1e6;
    /* replicas: creates of 10 instances spread over nodes */
    t0 = nubo_mono_us();
    int reps = 0;
    for (int k = 0; k < placements / 10; k++) {
        struct ctl_sched_req req = {metros[k % 4], 64, 1, 10};
        if (ctl_schedule(nodes, (size_t)n, &req, out, NULL) == 0)
            reps += 10;
    }
    double rep_s = (nubo_mono_us() - t0) / 1e6;
    printf("bench_sched: %d nodes in 4 metros\n", n);
    printf("  baseline (one scan per placement): %10.0f /s\n", placements / base_s);
    printf("  single placements:                 %10.0f /s  (%.2f of baseline)\n",
           placed / single_s, (placed / single_s) / (placements / base_s));
    printf("  10-replica creates:                %10.0f instances/s\n", reps / rep_s);
    (void)sink;
    free(nodes);
    free(ids);
    return 0;
}
