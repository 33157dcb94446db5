/* SPDX-License-Identifier: MIT */
/* mm/hmm.c - being written (issue 4 / issue 3); nothing here yet. */
