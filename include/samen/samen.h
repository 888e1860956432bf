/* samen/samen.h - everything. */
#ifndef SAMEN_SAMEN_H
#define SAMEN_SAMEN_H
#include "samen/common.h"
#include "samen/store.h"
#include "samen/plan.h"
#include "samen/members.h"
#include "samen/bundle.h"
#include "samen/schema.h"
#include "samen/remote.h"
#include "samen/peer.h"
#endif
