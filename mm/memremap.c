/* SPDX-License-Identifier: MIT */
/* mm/memremap.c - being written (issue 4 / issue 3); nothing here yet. */
