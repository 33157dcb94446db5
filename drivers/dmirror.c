/* SPDX-License-Identifier: MIT */
/* drivers/dmirror.c - being written (issue 4); nothing here yet. */
