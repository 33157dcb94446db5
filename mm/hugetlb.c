/* SPDX-License-Identifier: MIT */
/* mm/hugetlb.c - being written (issue 4 / issue 3); nothing here yet. */
