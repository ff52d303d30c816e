*** Settings ***
Documentation    Power cuts on emulated drives with and without power-loss protection (PLP), judged by the
...              data-integrity oracle: a writer in the guest journals every acknowledged write and
...              flush; after the cut and a restart on the same disks exactly those blocks are checked.
...
...              Without PLP, writes not followed by a flush may be lost but never corrupted; with PLP
...              every acknowledged write survives. The last tests prove the verdict catches damage:
...              bytes flipped by hand, and two firmware bugs of the drive model (``liar``, ``tearing``).

Library          VmLibrary
Library          IntegrityLibrary

Test Tags        fault    integrity    vm


*** Variables ***
# 1000 writes with a flush after every 64: the last 40 writes (about 36 blocks) are never flushed.
${BLOCKS}         256
${WRITES}         1000
${FLUSH_EVERY}    64


*** Test Cases ***
Power Cut Without PLP Loses Only Unflushed Writes
    ${drive}    ${vm}    ${writer}    Cut Power After Writes    plp=${False}
    Restart VM    ${vm}
    ${report}    Verify Data Integrity    ${writer}    ${drive}    vm=${vm}
    Should Not Be Equal As Integers    ${report}[lost_allowed]    0
    ...    the drive kept every unflushed write: not a volatile cache    values=False
    Should Be Equal As Integers    ${report}[corrupt]    0

Power Cut With PLP Keeps Every Acknowledged Write
    ${drive}    ${vm}    ${writer}    Cut Power After Writes    plp=${True}
    Restart VM    ${vm}
    ${report}    Verify Data Integrity    ${writer}    ${drive}
    Should Be Equal As Integers    ${report}[lost_allowed]    0
    Should Be Equal As Integers    ${report}[intact]    ${report}[checked]

Power Cut In The Middle Of Writes Corrupts Nothing
    ${drive}    Start Power Loss Drive    size=64M    plp=${False}
    ${vm}    Launch NVMe VM    name=pl-mid    nbd=${drive.uri}
    ${writer}    Start Integrity Writer    ${vm}    blocks=${BLOCKS}    flush_every=${FLUSH_EVERY}
    Wait For Integrity Writer    ${writer}    writes=600
    Cut Power    ${vm}    ${drive}
    ${report}    Verify Data Integrity    ${writer}    ${drive}
    Should Be Equal As Integers    ${report}[corrupt]    0

Verdict Catches Damaged Flushed Data
    ${drive}    ${_}    ${writer}    Cut Power After Writes    plp=${False}
    ${block}    Damage Flushed Block    ${drive}    ${writer}
    Run Keyword And Expect Error    Data integrity failed (no-PLP): 1 of * block ${block} torn*
    ...    Verify Data Integrity    ${writer}    ${drive}

A Drive That Acknowledges Flushes It Never Made Fails The Verdict
    [Documentation]    The ``liar`` firmware bug: FLUSH and FUA are acknowledged but the data stays
    ...    in the volatile cache, so the cut loses flushed blocks and the oracle names them stale.
    [Tags]    drive_model
    ${drive}    ${vm}    ${writer}    Cut Power After Writes    personality=liar
    Restart VM    ${vm}
    VAR    ${lost_flushed}
    ...    Data integrity failed (no-PLP): * (torn 0, stale [1-9]*, misplaced 0, garbage 0): block * stale*
    Run Keyword And Expect Error    ${lost_flushed}
    ...    Verify Data Integrity    ${writer}    ${drive}

A Drive That Tears Writes At The Cut Fails The Verdict
    [Documentation]    The ``tearing`` firmware bug: a 512-byte power-fail unit, so the 4 KiB blocks
    ...    written after the last flush are torn by the cut (flushed ones stay whole).
    [Tags]    drive_model
    ${drive}    ${vm}    ${writer}    Cut Power After Writes    personality=tearing
    Restart VM    ${vm}
    VAR    ${torn}
    ...    Data integrity failed (no-PLP): * (torn [1-9]*, stale 0, misplaced 0, garbage 0): block * torn*
    Run Keyword And Expect Error    ${torn}
    ...    Verify Data Integrity    ${writer}    ${drive}


*** Keywords ***
Cut Power After Writes
    [Documentation]    A VM on a new drive (the ``client-qlc`` model without PLP, ``datacenter-tlc``
    ...    with it, or ${personality}), ${WRITES} writes with a flush every ${FLUSH_EVERY}, then
    ...    the power cut (drive and QEMU together) and the drive powered on again.
    [Arguments]    ${plp}=${None}    ${personality}=${None}
    ${drive}    Start Power Loss Drive    size=64M    plp=${plp}    personality=${personality}
    ${vm}    Launch NVMe VM    name=pl    nbd=${drive.uri}
    ${writer}    Start Integrity Writer    ${vm}    blocks=${BLOCKS}    count=${WRITES}
    ...    flush_every=${FLUSH_EVERY}
    Wait For Integrity Writer    ${writer}    finished=${True}
    Cut Power    ${vm}    ${drive}
    Restore Power    ${drive}
    RETURN    ${drive}    ${vm}    ${writer}
