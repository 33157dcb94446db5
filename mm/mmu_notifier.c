/* SPDX-License-Identifier: MIT */
/* mm/mmu_notifier.c - being written (issue 4 / issue 3); nothing here yet. */
