/* SPDX-License-Identifier: MIT */
/* mm/migrate_device.c - being written (issue 4 / issue 3); nothing here yet. */
