/* SPDX-License-Identifier: MIT */
/* uhmm/uhmm.h - everything a user of uhmm includes. */
#ifndef UHMM_UHMM_H
#define UHMM_UHMM_H

#include "uhmm/types.h"
#include "uhmm/mm_types.h"
#include "uhmm/pgtable.h"
#include "uhmm/machine.h"
#include "uhmm/mm.h"
#include "uhmm/gup.h"
#include "uhmm/hugetlb.h"
#include "uhmm/fs.h"
#include "uhmm/memremap.h"
#include "uhmm/mmu_notifier.h"
#include "uhmm/hmm.h"
#include "uhmm/migrate.h"

#endif /* UHMM_UHMM_H */
