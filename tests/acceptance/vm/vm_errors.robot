*** Settings ***
Documentation    Bad input and faults of our own: each is one clear line, and no QEMU is left.

Library          OperatingSystem
Library          Process
Library          VmLibrary    boot_timeout=60

Test Tags        vm    acceptance    errors


*** Variables ***
${FAST_APPEND}    console=ttyS0 loglevel=4 panic=-1 rdinit=/init
# A name of this run's own, so the last test finds only this suite's QEMU on a shared machine.
${NAME}           err-${{__import__("uuid").uuid4().hex[:8]}}


*** Test Cases ***
Missing Kernel
    [Documentation]    A kernel path that does not exist fails before QEMU starts.
    Run Keyword And Expect Error    kernel '/nonexistent/vmlinuz' does not exist
    ...    Launch NVMe VM    name=${NAME}    kernel=/nonexistent/vmlinuz

Missing Initrd
    [Documentation]    So does an initrd path.
    ${kernel}    Get Guest Image Kernel
    Run Keyword And Expect Error    initrd '/nonexistent/initrd.img' does not exist
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=/nonexistent/initrd.img

Missing Disk Image
    [Documentation]    And a disk image path.
    Run Keyword And Expect Error    disk image '/nonexistent/disk.qcow2' does not exist
    ...    Launch NVMe VM    name=${NAME}    disk_image=/nonexistent/disk.qcow2    ssh_key=${CURDIR}/vm_errors.robot

Namespace Bigger Than Its Backing File
    [Documentation]    A size that does not fit in an existing backing file is refused.
    VAR    ${backing}    ${OUTPUT DIR}${/}small.raw
    Create Binary File    ${backing}    ${EMPTY}
    Evaluate    os.truncate($backing, 1048576)
    Run Keyword And Expect Error    namespace 1 of nvme0: size 2 GiB does not fit in backing file '*' (1 MiB)
    ...    Launch NVMe VM    name=${NAME}    size=2G    backing=${backing}

Namespace Bigger Than The Free Disk Space
    [Documentation]    A new backing file larger than the free space of its folder is refused.
    Run Keyword And Expect Error    namespace size * bytes does not fit: only * bytes free in '*'
    ...    Launch NVMe VM    name=${NAME}    size=900T

Namespace Size That Is Not A Size
    [Documentation]    Sizes are bytes or numbers with K/M/G/T.
    Run Keyword And Expect Error    namespace size 'lots' is not a size (use bytes or e.g. 64M, 1G, 1GiB)
    ...    Launch NVMe VM    name=${NAME}    size=lots

QEMU Missing
    [Documentation]    A QEMU that is not installed is named with the way to install one.
    Set Environment Variable    NVMECHAOS_QEMU    qemu-system-nonexistent
    TRY
        Run Keyword And Expect Error    QEMU is not installed: no 'qemu-system-nonexistent' on PATH*
        ...    Launch NVMe VM    name=${NAME}
    FINALLY
        Remove Environment Variable    NVMECHAOS_QEMU
    END

QEMU Too Old
    [Documentation]    QEMU 7.2 (Debian 12's own) loses NVMe I/O under TCG: refused with the fix.
    VAR    ${fake}    ${OUTPUT DIR}${/}qemu-7.2
    Create File    ${fake}    \#!/bin/sh\necho "QEMU emulator version 7.2.15 (Debian 1:7.2+dfsg-7+deb12u13)"\n
    Evaluate    os.chmod($fake, 0o755)
    Set Environment Variable    NVMECHAOS_QEMU    ${fake}
    TRY
        Run Keyword And Expect Error    QEMU 7.2.15 at * is too old: need >= 8.0*bookworm-backports*
        ...    Launch NVMe VM    name=${NAME}
    FINALLY
        Remove Environment Variable    NVMECHAOS_QEMU
    END

Guest Never Ready Includes The Console Tail
    [Documentation]    A guest whose init never starts sshd (cat waits on the console) fails after the
    ...    timeout with the console's last lines.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image
    ${message}    Run Keyword And Expect Error    *
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img    timeout=12
    ...    append=console=ttyS0 loglevel=7 panic=-1 rdinit=/bin/cat
    Should Match    ${message}    guest of VM '${NAME}' not ready within 12 s (*); console: *
    Should Not Contain    ${message}    console: (empty)

Bogus Initrd Ends QEMU And Says So
    [Documentation]    An initrd that is not one makes the kernel panic; QEMU ends and the error shows the panic.
    ${kernel}    Get Guest Image Kernel
    VAR    ${bogus}    ${OUTPUT DIR}${/}bogus-initrd.img
    Create File    ${bogus}    this is not an initramfs
    ${message}    Run Keyword And Expect Error    *
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${bogus}    append=${FAST_APPEND}    timeout=60
    Should Match    ${message}    QEMU of VM '${NAME}' ended (exit code 0) before the guest was ready; *console: *
    Should Contain    ${message}    Kernel panic

Fio Missing In A User Supplied Guest
    [Documentation]    A guest without fio is refused by the readiness check, naming the fix.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image    with_fio=False
    Run Keyword And Expect Error    fio is missing in the guest of VM '${NAME}'*
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img

SSH Login Refused
    [Documentation]    A user the guest does not know is refused at once, not after the timeout.
    Run Keyword And Expect Error    SSH login as nobody to 127.0.0.1:* refused: *
    ...    Launch NVMe VM    name=${NAME}    ssh_user=nobody

Wrong Pinned Host Key
    [Documentation]    A guest answering with another host key than the pinned one is refused.
    ${kernel}    Get Guest Image Kernel
    ${image}    Build Guest Image
    Run Keyword And Expect Error    guest SSH host key * is not the pinned key*
    ...    Launch NVMe VM    name=${NAME}    kernel=${kernel}    initrd=${image}${/}initrd.img
    ...    host_key=ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmlUeA6MFqRgBGD7a6RHhJvVZ7IBX9ZY4ZUDp5rKzPe

No QEMU Left Behind
    [Documentation]    None of the failures above left a QEMU running.
    ${result}    Run Process    pgrep    -f    nvmechaos-${NAME}
    Should Be Equal As Integers    ${result.rc}    1    QEMU still running: ${result.stdout}
