*** Settings ***
Documentation    Acceptance tests of IntegrityLibrary with a real VM: drives with and without
...              power-loss protection, power cuts, and the integrity oracle catching real damage.

Library          OperatingSystem
Library          VmLibrary
Library          IntegrityLibrary

Test Tags        fault    integrity    vm


*** Variables ***
${BLOCKS}         256
${WRITES}         1000
${FLUSH_EVERY}    64


*** Test Cases ***
No PLP Cut Loses Exactly The Unflushed Blocks And Corrupts None
    ${drive}    ${vm}    ${writer}    Written And Cut    plp=${False}
    ${host}    Verify Data Integrity    ${writer}    ${drive}
    Should Be True    ${host}[lost_allowed] > 0
    Should Be Equal    ${host}[lost_allowed]    ${host}[unflushed_blocks]
    Should Be Equal As Integers    ${host}[corrupt]    0
    Should Be Equal    ${host}[profile]    no-PLP
    ${guest}    Restart And Verify Through The Guest    ${drive}    ${vm}    ${writer}
    Should Be Equal    ${guest}[intact]    ${host}[intact]
    Should Be Equal    ${guest}[lost_allowed]    ${host}[lost_allowed]

PLP Cut Keeps Every Acknowledged Write
    ${drive}    ${_}    ${writer}    Written And Cut    plp=${True}
    ${report}    Verify Data Integrity    ${writer}    ${drive}
    Should Be True    ${report}[unflushed_blocks] > 0
    Should Be Equal As Integers    ${report}[lost_allowed]    0
    Should Be Equal    ${report}[intact]    ${report}[checked]
    Should Be Equal    ${report}[profile]    PLP

Oracle Catches Torn, Garbage And Stale Blocks
    ${drive}    ${_}    ${writer}    Written And Cut    plp=${False}
    Verify Data Integrity    ${writer}    ${drive}
    # Judged as if the drive had PLP, its lost unflushed blocks are stale.
    Run Keyword And Expect Error    Data integrity failed (PLP): * stale *block * stale: *
    ...    Verify Data Integrity    ${writer}    ${drive}    plp=${True}
    ${payload}    Damage Flushed Block    ${drive}    ${writer}    offset=1000
    Run Keyword And Expect Error    Data integrity failed (no-PLP): 1 of * (torn 1, *block ${payload} torn: *
    ...    Verify Data Integrity    ${writer}    ${drive}
    ${report}    Verify Data Integrity    ${writer}    ${drive}    fail_on_error=${False}
    Should Be Equal As Integers    ${report}[torn]    1
    Run Keyword And Expect Error    Data integrity failed (no-PLP): 1 of *block ${payload} torn*
    ...    Integrity Report Should Be Clean    ${report}
    ${header}    Damage Flushed Block    ${drive}    ${writer}    offset=8    count=1    pick=1
    Run Keyword And Expect Error    *corrupt (torn 1, stale 0, misplaced 0, garbage 1)*block ${header} garbage*
    ...    Verify Data Integrity    ${writer}    ${drive}

FUA Writes Survive Without PLP
    ${drive}    ${vm}    ${writer}    Start Writer On New VM    plp=${False}    fua_every=5
    Wait For Integrity Writer    ${writer}    finished=${True}
    Cut Power    ${vm}    ${drive}
    ${report}    Verify Data Integrity    ${writer}    ${drive}
    Should Be Equal As Integers    ${report}[fua_writes]    200
    Should Be Equal As Integers    ${report}[corrupt]    0

Cut During Writes Then Restart Verifies Through The Guest
    ${drive}    ${vm}    ${writer}    Start Writer On New VM    plp=${False}    count=0
    Wait For Integrity Writer    ${writer}    writes=500
    # Without drives, Cut Power cuts those backing the VM's namespaces.
    ${cut}    Cut Power    ${vm}
    Should Be Equal    ${cut.drives}    ${{ ($drive.name,) }}
    ${report}    Restart And Verify Through The Guest    ${drive}    ${vm}    ${writer}
    Should Be True    ${report}[writes] >= 500
    Should Be Equal As Integers    ${report}[corrupt]    0
    Cut Should Be On The Power Timeline    ${cut}

Writer Errors Are One Clear Line
    ${drive}    Start Power Loss Drive    size=16M
    ${vm}    Launch NVMe VM    name=pl-err    nbd=${drive.uri}
    Run Keyword And Expect Error    *integrity writer in VM 'pl-err' failed: 2 open: No such file or directory
    ...    Start Integrity Writer    ${vm}    device=/dev/nvme9n1
    Run Keyword And Expect Error    writer device 'nvme0n1' is not a /dev path
    ...    Start Integrity Writer    ${vm}    device=nvme0n1
    ${writer}    Start Integrity Writer    ${vm}    count=10
    Wait For Integrity Writer    ${writer}    finished=${True}
    Run Keyword And Expect Error    give plp=True or plp=False, or the drive (its profile decides)
    ...    Verify Data Integrity    ${writer}
    ${figures}    Stop Integrity Writer    ${writer}
    Should Be Equal As Integers    ${figures}[writes]    10
    VAR    ${LEFT_DRIVE}    ${drive}    scope=SUITE

Wrong Handles Are One Clear Line
    Run Keyword And Expect Error    'x' is not a drive (use the handle `Start Power Loss Drive` returned)
    ...    Cut Power    x    x
    Run Keyword And Expect Error    'x' is not an integrity writer (use the handle `Start Integrity Writer` returned)
    ...    Verify Data Integrity    x    plp=${True}
    Run Keyword And Expect Error    'x' is not a report of `Verify Data Integrity`
    ...    Integrity Report Should Be Clean    x

Drives And Writers Are Gone After The Test
    Should Not Be True    ${LEFT_DRIVE.is_alive()}
    Directory Should Not Exist    ${LEFT_DRIVE.run_dir}


*** Keywords ***
Start Writer On New VM
    [Documentation]    A new drive, a VM on it, and the integrity writer started in the guest.
    [Arguments]    ${plp}    ${count}=${WRITES}    ${fua_every}=0
    ${drive}    Start Power Loss Drive    size=64M    plp=${plp}
    ${vm}    Launch NVMe VM    name=pl    nbd=${drive.uri}
    ${writer}    Start Integrity Writer    ${vm}    blocks=${BLOCKS}    count=${count}
    ...    flush_every=${FLUSH_EVERY}    fua_every=${fua_every}
    RETURN    ${drive}    ${vm}    ${writer}

Written And Cut
    [Documentation]    ${WRITES} writes, a flush after every ${FLUSH_EVERY}, then the power cut.
    [Arguments]    ${plp}
    ${drive}    ${vm}    ${writer}    Start Writer On New VM    plp=${plp}
    Wait For Integrity Writer    ${writer}    finished=${True}
    Cut Power    ${vm}    ${drive}
    RETURN    ${drive}    ${vm}    ${writer}

Restart And Verify Through The Guest
    [Documentation]    Power the drive on again, restart the VM on it, and verify by reading the
    ...    blocks through the guest; return the report.
    [Arguments]    ${drive}    ${vm}    ${writer}
    Restore Power    ${drive}
    Restart VM    ${vm}
    ${report}    Verify Data Integrity    ${writer}    ${drive}    vm=${vm}
    RETURN    ${report}

Cut Should Be On The Power Timeline
    [Documentation]    The cut is recorded on the power timeline with its monotonic and wall time.
    [Arguments]    ${cut}
    ${events}    Get Power Timeline    source=${cut.vm}    action=cut
    Should Be Equal As Numbers    ${events[-1].monotonic}    ${cut.monotonic}
    Should Be True    ${cut.wall} > 1.7e9
