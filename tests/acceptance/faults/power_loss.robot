*** Settings ***
Documentation    Acceptance tests of IntegrityLibrary with a real VM: drives with and without
...              power-loss protection, power cuts, and the integrity oracle catching real damage.

Library          OperatingSystem
Library          VmLibrary
Library          IntegrityLibrary

Test Tags        fault    integrity    vm


*** Variables ***
${BLOCKS}             256
${WRITES}             1000
${FLUSH_EVERY}        64
${TOO_MANY_BLOCKS}    writer blocks=1000000 of block_size=4096 need 4096000000 bytes, more than /dev/nvme0n1
...                   in VM 'pl-err' holds: 16777216 bytes (4096 blocks)
${BAD_TIMEOUT}        ValueError: Argument 'timeout' got value 'soon' that cannot be converted to timedelta:
...                   Invalid time string 'soon'.
# EQUALS: the type's brackets are not a pattern.
${NOT_A_REPORT}       EQUALS:ValueError: Argument 'report' got value 'x' that cannot be converted to
...                   dict[str, Any]: Invalid expression.


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
    Writer Device Is Checked Before The Writer Starts    ${vm}
    ${writer}    Start Integrity Writer    ${vm}    count=10
    Waits That Can Never End Are Refused    ${writer}
    Wait For Integrity Writer    ${writer}    finished=${True}
    Bad Verdict Arguments Are Refused    ${drive}    ${writer}
    ${figures}    Stop Integrity Writer    ${writer}
    Should Be Equal As Integers    ${figures}[writes]    10
    VAR    ${LEFT_DRIVE}    ${drive}    scope=SUITE

Wrong Handles Are One Clear Line
    Run Keyword And Expect Error    'x' is not a drive (use the handle `Start Power Loss Drive` returned)
    ...    Cut Power    x    x
    Run Keyword And Expect Error    'x' is not an integrity writer (use the handle `Start Integrity Writer` returned)
    ...    Verify Data Integrity    x    plp=${True}
    Run Keyword And Expect Error    ${NOT_A_REPORT}
    ...    Integrity Report Should Be Clean    x

Drive Errors Are One Clear Line Before Anything Starts
    [Documentation]    A path where no image can be created used to raise a raw FileNotFoundError.
    Run Keyword And Expect Error    drive bad: cannot create image '/proc/x/disk.img': folder '/proc/x' does not exist
    ...    Start Power Loss Drive    backing=/proc/x/disk.img    name=bad
    Run Keyword And Expect Error    drive bad: image '${OUTPUT DIR}' is not a regular file
    ...    Start Power Loss Drive    backing=${OUTPUT DIR}    name=bad
    Run Keyword And Expect Error    plp 'maybe' is not true or false
    ...    Start Power Loss Drive    plp=maybe
    Run Keyword And Expect Error    drive size 'none at all' is not a size (use bytes or e.g. 64M, 1G, 1GiB)
    ...    Start Power Loss Drive    size=none at all    name=bad
    Run Keyword And Expect Error
    ...    ValueError: Argument 'action' got value 'cutt' that cannot be converted to PowerAction or None.
    ...    Get Power Timeline    action=cutt
    Run Keyword And Expect Error    'x' is not a VM (use the handle `Launch NVMe VM` returned)
    ...    Cut Power    x

Drives And Writers Are Gone After The Test
    Should Not Be True    ${LEFT_DRIVE.is_alive()}
    Directory Should Not Exist    ${LEFT_DRIVE.run_dir}


*** Keywords ***
Writer Device Is Checked Before The Writer Starts
    [Documentation]    A missing device names the guest's devices; more blocks than the device holds
    ...    names blocks, block size and device size (it used to fail later with ENOSPC).
    [Arguments]    ${vm}
    Run Keyword And Expect Error
    ...    writer device /dev/nvme9n1 does not exist in VM '${vm.name}' (its NVMe devices: /dev/nvme0n1)
    ...    Start Integrity Writer    ${vm}    device=/dev/nvme9n1
    Run Keyword And Expect Error    ${TOO_MANY_BLOCKS}
    ...    Start Integrity Writer    ${vm}    blocks=1000000
    Run Keyword And Expect Error    writer device 'nvme0n1' is not a /dev path
    ...    Start Integrity Writer    ${vm}    device=nvme0n1
    Run Keyword And Expect Error    blocks '0' is not a whole number of at least 1
    ...    Start Integrity Writer    ${vm}    blocks=0

Waits That Can Never End Are Refused
    [Documentation]    A bad timeout, or writes the writer will never make, fail at once.
    [Arguments]    ${writer}
    Run Keyword And Expect Error    ${BAD_TIMEOUT}
    ...    Wait For Integrity Writer    ${writer}    timeout=soon
    Run Keyword And Expect Error    writes=11 can never be reached: the writer stops after count=10 writes
    ...    Wait For Integrity Writer    ${writer}    writes=11
    Run Keyword And Expect Error    finished 'perhaps' is not true or false
    ...    Wait For Integrity Writer    ${writer}    finished=perhaps

Bad Verdict Arguments Are Refused
    [Documentation]    Verify needs a profile and an image that exists; Damage Flushed Block stays
    ...    inside the writer's blocks.
    [Arguments]    ${drive}    ${writer}
    Run Keyword And Expect Error    give plp=True or plp=False, or the drive (its profile decides)
    ...    Verify Data Integrity    ${writer}
    Run Keyword And Expect Error    offset=4000 + count=200 go beyond one block of 4096 bytes
    ...    Damage Flushed Block    ${drive}    ${writer}    offset=4000    count=200
    Run Keyword And Expect Error    block 999 is not one the writer writes (0 to 255)
    ...    Damage Flushed Block    ${drive}    ${writer}    block=999
    Run Keyword And Expect Error    image '/no-such-folder/x.img' does not exist (or is not a file)
    ...    Verify Data Integrity    ${writer}    plp=${True}    image=/no-such-folder/x.img

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
